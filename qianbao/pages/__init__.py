"""Qianbao's own pages: the first page, sign-up and sign-in, Home and Me, the account's
security pages, and the reviewers' back office.

They sit above every domain (they show what each knows), while ``qianbao.web`` below them
is only the plumbing every domain's pages share (rendering, CSRF, the signed-in person),
so no domain's pages import these and these import no page plumbing back.
"""
