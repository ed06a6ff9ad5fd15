"""``qianbao shops ...`` and ``qianbao oidc ...``: the operators' side of Log in with
Qianbao (register a shop, list them, rotate the ID token signing key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.openplatform.oidc import service
from qianbao.settings import get_settings

shops_app = typer.Typer(help="Shops that may use Log in with Qianbao.", no_args_is_help=True)
oidc_app = typer.Typer(help="The OpenID Connect provider.", no_args_is_help=True)


@shops_app.command("add")
def add_shop(
    name_en: Annotated[str, typer.Option("--name-en", help="The shop's name in English.")],
    name_zh: Annotated[str, typer.Option("--name-zh", help="The shop's name in Chinese.")],
    redirect_uri: Annotated[
        list[str], typer.Option("--redirect-uri", help="An exact redirect URI (repeatable).")
    ],
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Chosen id (default: generated).")
    ] = None,
    logo_url: Annotated[str, typer.Option("--logo-url", help="The shop's logo.")] = "",
    jwks: Annotated[
        Path | None,
        typer.Option("--jwks", help="A JWKS file of public keys: the shop uses private_key_jwt."),
    ] = None,
) -> None:
    """Register a shop; a secret shop's client secret is printed once, never again."""
    method = "private_key_jwt" if jwks is not None else "client_secret_basic"
    keys = jwks.read_text() if jwks is not None else None
    database = Database(get_settings())
    try:
        shop, secret = database.run(
            lambda tx: service.register_shop(
                tx,
                client_id=client_id,
                name_en=name_en,
                name_zh=name_zh,
                redirect_uris=redirect_uri,
                auth_method=method,
                logo_url=logo_url,
                jwks=keys,
            )
        )
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    finally:
        database.dispose()
    typer.echo(f"client_id: {shop.client_id}")
    typer.echo(f"auth: {method}")
    if secret is not None:
        typer.echo(f"client_secret: {secret}")
        typer.echo("(shown only now: give it to the shop over a safe channel)")


@shops_app.command("list")
def list_shops() -> None:
    """Every registered shop, its authentication and redirect URIs."""
    database = Database(get_settings())
    try:
        found = database.run(service.shops)
    finally:
        database.dispose()
    for shop in found:
        state = " (disabled)" if shop.disabled else ""
        typer.echo(f"{shop.client_id}\t{shop.auth_method}\t{shop.name_en} / {shop.name_zh}{state}")
        for uri in shop.redirect_uris:
            typer.echo(f"\t{uri}")


@oidc_app.command("rotate-key")
def rotate_key() -> None:
    """A new ID token signing key; the old one stays in the JWKS until the ID tokens it
    signed have expired (QIANBAO_OIDC_ID_TOKEN_SECONDS)."""
    database = Database(get_settings())
    try:
        new, retired = database.run(service.rotate_signing_key)
    finally:
        database.dispose()
    typer.echo(f"signing key now: {new}")
    for kid in retired:
        typer.echo(f"retired (published until its tokens expire): {kid}")
