"""``qianbao``: serve, worker, db, demo, sms, admin."""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated

import typer

from qianbao import migrate
from qianbao.db import Database
from qianbao.settings import get_settings

app = typer.Typer(help="Qianbao wallet service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sms_app = typer.Typer(help="SMS messages.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sms_app, name="sms")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed demo users and show the SMS outbox.")] = False,
) -> None:
    """Run the web app and the JSON API (migrating the database first)."""
    import uvicorn

    if demo:
        os.environ["QIANBAO_DEMO"] = "true"
        get_settings.cache_clear()
    settings = get_settings()
    settings.hmac_key()  # create the key file before several workers race to do it
    migrate.upgrade(settings)
    if demo:
        _seed_demo()
    typer.echo(f"Qianbao on http://{host}:{port}  (database: {settings.database_url})")
    uvicorn.run(
        "qianbao.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="info",
        access_log=False,
    )


def _seed_demo() -> None:
    from qianbao.identity import service

    settings = get_settings()
    database = Database(settings)
    accounts = database.run(service.seed_demo_accounts)
    database.dispose()
    typer.echo("Demo accounts (log in with the number; SMS code " + settings.demo_sms_code + "):")
    for account in accounts:
        typer.echo(f"  {account.phone.international():<20} language {account.language}")
    typer.echo("Any other number can sign up; read its code at /demo/outbox.")


@app.command()
def demo() -> None:
    """Seed the demo accounts into the configured database."""
    os.environ["QIANBAO_DEMO"] = "true"
    get_settings.cache_clear()
    migrate.upgrade(get_settings())
    _seed_demo()


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Do the work that is due, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between sweeps.")] = 2.0,
) -> None:
    """Deliver queued messages and keep tables tidy (several workers may run at once)."""
    from qianbao import jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    database = Database(get_settings())
    schedule = jobs.default_jobs()
    try:
        while True:
            for name, count in jobs.run_due(database, schedule).items():
                if count:
                    typer.echo(f"{name}: {count}")
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo("worker stopped")
    finally:
        database.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    migrate.upgrade(get_settings(), revision)
    typer.echo("database is at " + revision)


@sms_app.command("outbox")
def sms_outbox(
    phone: Annotated[
        str | None, typer.Option(help="Only messages to this number (+44 7911 123456).")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Show messages in the SMS outbox (the sandbox gateway's phone)."""
    from qianbao.errors import QianbaoError
    from qianbao.identity.phone import parse_mobile
    from qianbao.notify import service as notify

    recipient = None
    if phone:
        try:
            recipient = parse_mobile(phone, get_settings().default_region).e164
        except QianbaoError as error:
            raise typer.BadParameter(error.localized_message(), param_hint="--phone") from None
    database = Database(get_settings())
    for message in database.run(lambda tx: notify.read_outbox(tx, recipient, limit)):
        stamp = message.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{stamp}  {message.recipient:<16} {message.status:<8} {message.body}")
