"""A wholesale shop in the style of 1688 that links its accounts to Qianbao.

A separate application with its own SQLite database and its own accounts. It knows
Qianbao only as an OpenID Connect provider reached over HTTP (discovery, the code flow
with PKCE, the JWKS, userinfo and refresh), through requests-oauthlib and PyJWT.
"""
