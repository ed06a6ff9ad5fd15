"""``qianbao``: serve, worker, db, ledger, demo, sms, admin, trust, chip."""

from __future__ import annotations

import importlib.metadata
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from sqlalchemy import make_url

from qianbao import migrate
from qianbao.access import Role as StaffRole
from qianbao.backup_cli import backup_app, restore_app
from qianbao.chipreader.apdu import PcscTransport, ReaderError
from qianbao.chipreader.bac import MrzKey
from qianbao.chipreader.client import ServerRefused, read_and_submit
from qianbao.db import Database, Tx
from qianbao.openplatform.oidc.cli import oidc_app, shops_app
from qianbao.settings import get_settings
from qianbao.text_guard import check_shown_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from qianbao.verification import trust_store
    from qianbao.wallet.ledger import audit as books

app = typer.Typer(help="Qianbao wallet service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sms_app = typer.Typer(help="SMS messages.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sms_app, name="sms")
app.add_typer(backup_app, name="backup")
app.add_typer(restore_app, name="restore")
app.add_typer(shops_app, name="shops")
app.add_typer(oidc_app, name="oidc")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo("qianbao " + importlib.metadata.version("qianbao"))
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Qianbao wallet service."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed demo users and show the SMS outbox.")] = False,
) -> None:
    """Run the web app and the JSON API (migrating the database first)."""
    import uvicorn

    from qianbao.observability import logs, multiproc

    if demo:
        os.environ["QIANBAO_DEMO"] = "true"
        get_settings.cache_clear()
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    # Before anything that counts is imported; the worker processes inherit the choice.
    multiproc.prepare(settings.metrics_dir, settings.var_dir, workers)
    settings.hmac_key()  # create the key file before several workers race to do it
    migrate.upgrade(settings)
    if demo:
        _seed_demo()
    if settings.metrics_bind:
        from qianbao import monitoring

        monitoring.serve_metrics(settings)
    # The URL may carry the database's password: never printed.
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    typer.echo(f"Qianbao on http://{host}:{port}  (database: {database})")
    uvicorn.run(
        "qianbao.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        # The same JSON lines in every worker process; uvicorn's access log stays off
        # (ours, qianbao.access, has the route template and the request id).
        log_config=logs.logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level.lower(),
        access_log=False,
        # X-Forwarded-For and -Proto are read by qianbao/proxies.py alone, from the
        # proxies in QIANBAO_TRUSTED_PROXIES: uvicorn's own handling (on by default, for
        # 127.0.0.1) would let a local proxy's clients choose their address.
        proxy_headers=False,
        # A worker process loads the face and liveness models before it answers; uvicorn's
        # 5 s health check killed workers still loading on a busy 2-core machine, over and
        # over. A minute is well above the load time seen (about 10 s).
        timeout_worker_healthcheck=60,
    )


def _seed_demo() -> None:
    from qianbao.identity import service
    from qianbao.openplatform.gateway import demo as gateway_demo
    from qianbao.openplatform.oidc import service as oidc

    settings = get_settings()
    database = Database(settings)
    accounts = database.run(service.seed_demo_accounts)
    marketplace = database.run(oidc.seed_demo_shop)
    paying = database.run(gateway_demo.seed_demo_app)
    database.dispose()
    typer.echo("Demo accounts (log in with the number; SMS code " + settings.demo_sms_code + "):")
    for account in accounts:
        typer.echo(f"  {account.phone.international():<20} language {account.language}")
    typer.echo("Any other number can sign up; read its code at /demo/outbox.")
    typer.echo(
        f"Demo shop for Log in with Qianbao: client_id {marketplace.client_id}, secret from "
        f"QIANBAO_DEMO_MARKETPLACE_CLIENT_SECRET, redirect URI {marketplace.redirect_uris[0]}"
    )
    typer.echo(
        f"Demo shop for the trade API: app_id {paying.app_id} ({paying.merchant}), key pair "
        "in examples/marketplace/demo-keys/ (demo only); the platform's public key "
        f"(alipay_public_key): {paying.platform_public_key}"
    )


@app.command()
def demo() -> None:
    """Seed the demo accounts into the configured database."""
    os.environ["QIANBAO_DEMO"] = "true"
    get_settings.cache_clear()
    migrate.upgrade(get_settings())
    _seed_demo()


@app.command("demo-expire-tour-passes")
def demo_expire_tour_passes(
    after_days: Annotated[
        int, typer.Option(min=0, help="Run the expiry as if this many days had passed.")
    ] = 91,
    server: Annotated[
        str, typer.Option(help="Ask this running demo server to do it, instead of here.")
    ] = "",
) -> None:
    """Demo mode only: run the Tour Pass expiry job as if AFTER_DAYS days had passed, so
    the refunds to the cards can be seen without waiting 90 days. It runs here, against
    the configured database (the sandbox card network keeps its records in a file that
    every process shares), or with --server on a running `qianbao serve --demo`."""
    from datetime import timedelta

    import httpx

    settings = get_settings()
    if not server:
        from qianbao.wallet.tour_pass import service as tour_pass

        if not settings.demo:
            raise typer.BadParameter("only in demo mode (QIANBAO_DEMO=true)")
        database = Database(settings)
        try:
            as_of = database.clock.now() + timedelta(days=after_days)
            parts = tour_pass.expire_due(database, as_of=as_of)
        finally:
            database.dispose()
    else:
        base = server.rstrip("/")
        try:
            answer = httpx.post(
                f"{base}/api/v1/demo/tour-pass/expire",
                params={"after_days": after_days},
                timeout=60,
            )
        except httpx.HTTPError as error:
            raise typer.BadParameter(
                f"cannot reach {base} ({error}); is `qianbao serve --demo` running there?"
            ) from None
        if answer.status_code != 200:
            raise typer.BadParameter(f"{base} answered {answer.status_code}: {answer.text}")
        parts = int(answer.json()["refund_parts"])
    typer.echo(f"Tour Pass expiry ran {after_days} days ahead: {parts} refund parts sent")


worker_app = typer.Typer()  # its help is the worker's docstring
dead_app = typer.Typer(help="Messages the worker gave up on (dead letters).", no_args_is_help=True)
app.add_typer(worker_app, name="worker")
worker_app.add_typer(dead_app, name="dead")


@worker_app.callback(invoke_without_command=True)
def worker(
    context: typer.Context,
    once: Annotated[bool, typer.Option(help="Do the work that is due, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between idle sweeps.")] = 2.0,
) -> None:
    """Deliver queued messages, close what expired, keep tables tidy. Several workers may
    run at once (see qianbao/jobs.py); SIGTERM or Ctrl-C stops one after its sweep.
    `qianbao worker dead` lists and retries the messages it gave up on."""
    if context.invoked_subcommand is not None:
        return  # `qianbao worker dead ...`: a command about the worker, not the worker
    import signal
    import threading

    from qianbao import jobs
    from qianbao.observability import logs

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    database = Database(settings)
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signal, _frame: stop.set())
    try:
        jobs.work(
            database,
            jobs.default_jobs(),
            interval=interval,
            once=once,
            stop=stop,
            report=lambda name, count: typer.echo(f"{name}: {count}"),
        )
        if stop.is_set():
            typer.echo("worker stopped")
    finally:
        database.dispose()


@dead_app.command("list")
def dead_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """Outbox messages (SMS, email) the worker gave up on: id, channel, masked
    recipient, tries, last error. Never their text (it may hold a code)."""
    from qianbao.notify import dead_letters

    database = Database(get_settings())
    try:
        dead = database.run(lambda tx: dead_letters.dead_messages(tx, limit))
    finally:
        database.dispose()
    for message in dead:
        stamp = message.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{message.id}  {stamp}  {message.channel:<5} {message.recipient:<20}"
            f" {message.attempts} tries  {message.gateway or '-'}: {message.last_error or '-'}"
        )
    typer.echo(f"{len(dead)} dead messages")


@dead_app.command("retry")
def dead_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead messages' ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead message.")] = False,
) -> None:
    """Queue dead messages again with a fresh set of tries; a running `qianbao worker`
    sends them. Exits 1 when an id is not a dead message."""
    import uuid

    from qianbao.notify import dead_letters

    if bool(ids) == all_:
        raise typer.BadParameter("give the ids of dead messages, or --all")
    try:
        wanted = None if all_ else [uuid.UUID(text.strip()) for text in ids or []]
    except ValueError:
        raise typer.BadParameter("not a message id (see `qianbao worker dead list`)") from None
    database = Database(get_settings())
    try:
        queued = database.run(lambda tx: dead_letters.retry(tx, wanted))
    finally:
        database.dispose()
    typer.echo(f"{len(queued)} messages queued again")
    missing = sorted(str(i) for i in set(wanted or []) - set(queued))
    if missing:
        typer.echo("not dead messages (unknown, or already queued): " + ", ".join(missing))
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    migrate.upgrade(get_settings(), revision)
    typer.echo("database is at " + revision)


def _revision() -> str | None:
    """The database's revision; exit 2, without the URL (it may hold a password), when the
    database cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return migrate.current(get_settings())
    except SQLAlchemyError as error:
        typer.echo(f"cannot read the database: {type(error).__name__}", err=True)
        raise typer.Exit(2) from None


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at (Alembic's current), and whether it is the
    newest this code ships."""
    revision, head = _revision(), migrate.head()
    if revision is None:
        typer.echo(f"none (an empty database; the newest is {head})")
    else:
        typer.echo(revision + (" (head)" if revision == head else f" (the newest is {head})"))


@db_app.command("check")
def db_check() -> None:
    """Exit 0 when the database is at the newest revision this code ships, 1 otherwise."""
    revision, head = _revision(), migrate.head()
    if revision != head:
        typer.echo(f"database at {revision or 'none'}, code at {head}: run `qianbao db upgrade`")
        raise typer.Exit(1)
    typer.echo(f"database at {head} (head)")


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


# --- back office ---------------------------------------------------------------------------

admin_app = typer.Typer(help="Back-office people.", no_args_is_help=True)
kyc_app = typer.Typer(
    help="Verification data: retention and encryption keys.", no_args_is_help=True
)
app.add_typer(admin_app, name="admin")
app.add_typer(kyc_app, name="kyc")


@admin_app.command("create-staff")
def create_staff(
    username: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, .-_")],
    role: Annotated[
        StaffRole, typer.Option(help="What they may do (qianbao/access.py).", case_sensitive=False)
    ],
    name: Annotated[str, typer.Option(help="The name shown on decisions.")] = "",
) -> None:
    """Create a back-office account with its role; asks for the password twice."""
    _create_staff(username, role.value, name)


@admin_app.command("create-reviewer")
def create_reviewer(
    username: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, .-_")],
    name: Annotated[str, typer.Option(help="The name shown on decisions.")] = "",
    role: Annotated[
        StaffRole, typer.Option(help="What they may do (qianbao/access.py).", case_sensitive=False)
    ] = StaffRole.REVIEWER,
) -> None:
    """Create a reviewer of verification cases (or, with --role, any staff member)."""
    _create_staff(username, role.value, name)


def _create_staff(username: str, role: str, name: str) -> None:
    from qianbao.errors import QianbaoError
    from qianbao.identity import staff

    password = os.environ.get("QIANBAO_NEW_STAFF_PASSWORD") or typer.prompt(
        "Password (8 to 64 characters)", hide_input=True, confirmation_prompt=True
    )
    database = Database(get_settings())
    try:
        member = staff.create_staff(database, username, name or username, password, role)
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"{member.role} {member.username} created; sign in at /admin")


@kyc_app.command("purge")
def kyc_purge() -> None:
    """Delete verification images older than the retention period after the decision."""
    from qianbao.jobs import purge_verification_images

    count = purge_verification_images(Database(get_settings()))
    typer.echo(f"{count} images deleted")


@kyc_app.command("rotate-key")
def kyc_rotate_key(
    new_key: Annotated[
        bool, typer.Option(help="First add a fresh key to var/sealing.keys (no key in settings).")
    ] = False,
) -> None:
    """Reseal every passport record and image under the newest key.

    To rotate: put a new key first in QIANBAO_SEALING_KEYS (`id:base64`, newest first;
    keep the old ones), restart, run this, then drop the old keys. Without that setting,
    --new-key adds the key to var/sealing.keys itself.
    """
    from qianbao.private_files import write_private
    from qianbao.sealing import new_key_entry
    from qianbao.verification import service as verification

    settings = get_settings()
    if new_key:
        if settings.sealing_keys:
            raise typer.BadParameter(
                "the keys are given (QIANBAO_SEALING_KEYS or _FILE): add it there"
            )
        key_file = Path(settings.var_dir) / "sealing.keys"
        existing = key_file.read_text().strip() if key_file.exists() else ""
        key_id = f"k{int(time.time())}"
        write_private(key_file, ",".join(filter(None, [new_key_entry(key_id), existing])))
        typer.echo(f"new key {key_id} added to {key_file}")
    database = Database(settings)
    total = 0
    while True:
        done = database.run(lambda tx: verification.rotate_keys(tx))
        total += done
        if done == 0:
            break
    typer.echo(f"{total} records resealed under the newest key")


# --- passport chip trust store --------------------------------------------------------------

trust_app = typer.Typer(help="CSCA certificates and CRLs for passport chips.", no_args_is_help=True)
app.add_typer(trust_app, name="trust")


@trust_app.command("import")
def trust_import(
    files: Annotated[list[Path], typer.Argument(help="Master lists, certificates or CRLs.")],
) -> None:
    """Import CSCA certificates (PEM, DER or PKCS#7), an ICAO CSCA master list (its
    signature is checked and its signer must chain to an imported CSCA or a configured
    anchor, as in import-master-list) or a CRL (it must be signed by an imported CSCA)."""
    from datetime import UTC, datetime

    from qianbao.errors import QianbaoError
    from qianbao.verification import trust_store

    database = Database(get_settings())
    today = datetime.now(UTC).date()
    for path in files:
        data, name = path.read_bytes(), path.name

        def store(tx: Tx, data: bytes = data, name: str = name) -> trust_store.Imported:
            return trust_store.import_file(tx, data, name, today=today)

        try:
            done = database.run(store)
        except QianbaoError as error:
            raise typer.BadParameter(error.localized_message(), param_hint=str(path)) from None
        typer.echo(
            f"{path.name}: {done.cscas} CSCA certificates, {done.crls} CRLs added"
            f" ({done.already_known} already known)"
        )


@trust_app.command("import-master-list")
def trust_import_master_list(
    file: Annotated[Path, typer.Argument(help="An ICAO CSCA master list (CMS, .ml).")],
) -> None:
    """Import the CSCA certificates of an ICAO master list: its signature must verify and
    its signer chain to a CSCA already imported, or to a fingerprint in
    QIANBAO_CHIP_MASTER_LIST_ANCHORS; otherwise nothing is imported."""
    from datetime import UTC, datetime

    from qianbao.verification import trust_store

    today = datetime.now(UTC).date()
    _import_one(
        file,
        lambda tx, data: trust_store.import_master_list(tx, data, file.name, today=today),
    )


@trust_app.command("import-crl")
def trust_import_crl(
    file: Annotated[Path, typer.Argument(help="A CSCA's certificate revocation list.")],
) -> None:
    """Import a CRL (PEM or DER) signed by an imported CSCA: passports whose Document
    Signer it revokes are refused from then on (chip.ds_revoked)."""
    from qianbao.verification import trust_store

    _import_one(file, lambda tx, data: trust_store.import_crl(tx, data, file.name))


def _import_one(file: Path, store: Callable[[Tx, bytes], trust_store.Imported]) -> None:
    from qianbao.errors import QianbaoError

    try:
        data = file.read_bytes()
    except OSError as error:
        raise typer.BadParameter(error.strerror or str(error), param_hint=str(file)) from None
    try:
        done = Database(get_settings()).run(lambda tx: store(tx, data))
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message(), param_hint=str(file)) from None
    typer.echo(
        f"{file.name}: {done.cscas} CSCA certificates, {done.crls} CRLs added"
        f" ({done.already_known} already known)"
    )


@trust_app.command("list")
def trust_list() -> None:
    """The trust store: kind, country, valid until, subject, source file."""
    from qianbao.verification import trust_store

    rows = Database(get_settings()).run(trust_store.anchors)
    for row in rows:
        country = row.country or "--"
        typer.echo(f"{row.kind:<5} {country:<3} {row.not_after:<10} {row.subject}  [{row.source}]")
    typer.echo(f"{len(rows)} entries")


# --- a passport chip in a PC/SC reader: what the phone's NFC read does ----------------------

chip_app = typer.Typer(
    help="A passport chip in a contactless (PC/SC) reader.", no_args_is_help=True
)
app.add_typer(chip_app, name="chip")


@chip_app.command("read")
def chip_read(
    document_number: Annotated[
        str, typer.Option(help="The document number as printed in the zone.")
    ],
    birth_date: Annotated[str, typer.Option(help="Date of birth: YYMMDD or YYYY-MM-DD.")],
    expiry_date: Annotated[str, typer.Option(help="Date of expiry: YYMMDD or YYYY-MM-DD.")],
    token: Annotated[
        str, typer.Option(envvar="QIANBAO_TOKEN", help="Your API token (sign in to get one).")
    ],
    server: Annotated[
        str, typer.Option(envvar="QIANBAO_SERVER", help="The Qianbao server's address.")
    ] = "http://127.0.0.1:8000",
    reader: Annotated[int, typer.Option(help="Which PC/SC reader, from 0.")] = 0,
    language: Annotated[str, typer.Option(help="Messages from the server: en or zh-Hans.")] = "en",
) -> None:
    """Read a passport on a contactless reader and submit it to "Passport chip & face",
    as the app does over NFC: the chip is opened with the zone's number and dates (PACE
    when the chip offers it, else BAC),
    its files are read, it answers the server's challenge, and the server checks it."""
    try:
        key = MrzKey.parse(document_number, birth_date, expiry_date)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": language}
    try:
        transport = PcscTransport.open(reader)
        try:
            with httpx.Client(base_url=server, headers=headers, timeout=60) as http:
                done = read_and_submit(http, transport, key, typer.echo)
        finally:
            transport.close()
    except ReaderError as error:
        typer.echo(f"reader: {error}", err=True)
        raise typer.Exit(1) from None
    except ServerRefused as error:
        typer.echo(f"refused ({error.code}): {error.message}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as error:
        typer.echo(f"server: {error}", err=True)
        raise typer.Exit(1) from None
    document = done.case.get("document") or {}
    typer.echo(
        f"accepted: {document.get('surname', '')}, {document.get('given_names', '')}"
        f" ({document.get('nationality', '')}); case {done.case['id']} is at "
        f"'{done.case['status']}'. Confirm the name and take the face check in the app "
        "or on the web (Me > Verify)."
    )


@admin_app.command("create-merchant")
def create_merchant(name: Annotated[str, typer.Argument(help="The merchant's name.")]) -> None:
    """Create a merchant whose orders people pay at the cashier."""
    from qianbao.errors import QianbaoError
    from qianbao.wallet.payments import service as payments

    try:
        check_shown_text("name", name)  # the cashier shows it to every payer
        merchant_id = Database(get_settings()).run(lambda tx: payments.create_merchant(tx, name))
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"merchant {name!r} created: {merchant_id}")


@admin_app.command("create-merchant-user")
def create_merchant_user(
    merchant: Annotated[str, typer.Argument(help="The merchant's name (admin create-merchant).")],
    login: Annotated[str, typer.Argument(help="The user's email or username.")],
) -> None:
    """Create a user of the merchant portal (/merchant); prints the first password once."""
    from qianbao.errors import QianbaoError
    from qianbao.openplatform.merchants import accounts

    try:
        made = accounts.create_user(Database(get_settings()), merchant, login)
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"merchant user {made.user.login!r} of {made.user.merchant!r} created")
    typer.echo(f"first password (shown only now): {made.password}")


# --- the trade API's apps and keys (qianbao/openplatform/merchants/service.py) ------------


@admin_app.command("create-merchant-app")
def create_merchant_app(
    merchant: Annotated[str, typer.Argument(help="The merchant's name (admin create-merchant).")],
    name: Annotated[str, typer.Option(help="The app's name.")] = "Web shop",
) -> None:
    """Create an app of a merchant: its app_id signs requests to /gateway.do."""
    from qianbao.errors import QianbaoError
    from qianbao.openplatform.merchants import service as merchants

    try:
        made = Database(get_settings()).run(lambda tx: merchants.create_app(tx, merchant, name))
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"app {made.name!r} of {made.merchant!r} created: app_id {made.app_id}")


@admin_app.command("set-app-key")
def set_app_key(
    app_id: Annotated[str, typer.Argument(help="The app's app_id.")],
    key_file: Annotated[
        Path, typer.Argument(help="The app's RSA public key (PEM or Base64), 2048 bits or more.")
    ],
) -> None:
    """Install an app's public key; requests signed with the key it replaces are still
    accepted for QIANBAO_GATEWAY_APP_KEY_OVERLAP_SECONDS."""
    from qianbao.errors import QianbaoError
    from qianbao.openplatform.merchants import service as merchants

    text = key_file.read_text(encoding="ascii", errors="replace")
    try:
        done = Database(get_settings()).run(lambda tx: merchants.set_app_key(tx, app_id, text))
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"key of app {done.app_id} set")


@admin_app.command("link-app-client")
def link_app_client(
    app_id: Annotated[str, typer.Argument(help="The app's app_id.")],
    client_id: Annotated[str, typer.Argument(help="The Log in with Qianbao shop (shops add).")],
) -> None:
    """Answer the app's alipay.system.oauth.token and alipay.user.info.share from the
    grants of this OpenID Connect shop (its client_id)."""
    from qianbao.errors import QianbaoError
    from qianbao.openplatform.gateway import oauth

    try:
        Database(get_settings()).run(lambda tx: oauth.link_app_client(tx, app_id, client_id))
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    typer.echo(f"app {app_id} logs people in as shop {client_id}")


@admin_app.command("platform-key")
def platform_key(
    publish_next: Annotated[
        bool, typer.Option(help="Publish a new key pair for shops to install first.")
    ] = False,
    activate_next: Annotated[
        bool, typer.Option(help="Sign with the published key from now on.")
    ] = False,
) -> None:
    """Show the platform's public keys (the shops' alipay_public_key), and rotate them:
    --publish-next, then (once shops have it) --activate-next."""
    from qianbao.errors import QianbaoError
    from qianbao.openplatform import signing
    from qianbao.openplatform.merchants import service as merchants

    database = Database(get_settings())
    try:
        if publish_next:
            database.run(merchants.publish_next_platform_key)
        if activate_next:
            database.run(merchants.activate_next_platform_key)
        keys = database.run(merchants.platform_keys)
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    for key in keys:
        typer.echo(f"# {key.key_id} ({key.state})")
        typer.echo(key.public_key.strip())
        typer.echo(f"# as one line: {signing.bare_base64(key.public_key)}")


# --- top-up codes sold by stores (qianbao/wallet/topup_codes/service.py) --------------------


@admin_app.command("create-topup-codes")
def create_topup_codes(
    merchant: Annotated[str, typer.Option(help="The store selling the codes (its name).")],
    value: Annotated[str, typer.Option(help="What each code adds, in CNY: 100 or 50.50.")],
    count: Annotated[int, typer.Option(help="How many codes.")],
    paid_by_bank: Annotated[
        str | None,
        typer.Option(
            help="The store paid the face value by bank transfer (its reference); "
            "without it, the value comes from the store's settlement balance."
        ),
    ] = None,
) -> None:
    """Create a batch of codes, prepaid, and print them ONCE: only their hashes are kept."""
    from qianbao.errors import QianbaoError
    from qianbao.wallet.topup_codes import service as topup_codes

    database = Database(get_settings())
    try:
        batch = topup_codes.create_batch(
            database, merchant, value, count, paid_by_bank=paid_by_bank
        )
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message()) from None
    finally:
        database.dispose()
    typer.echo(
        f"batch {batch.id}: {len(batch.codes)} codes of {batch.value.format()} for "
        f"{batch.merchant!r}. They are shown only now: print or store them safely."
    )
    for code in batch.codes:
        typer.echo(code)


@admin_app.command("void-topup-codes")
def void_topup_codes(
    batch: Annotated[str, typer.Option(help="The batch's id, as create-topup-codes printed.")],
) -> None:
    """Withdraw a batch's unredeemed codes; their value goes back to the store."""
    import uuid

    from qianbao.errors import QianbaoError
    from qianbao.wallet.topup_codes import service as topup_codes

    try:
        batch_id = uuid.UUID(batch.strip())
    except ValueError:
        raise typer.BadParameter("not a batch id", param_hint="--batch") from None
    database = Database(get_settings())
    try:
        done = topup_codes.void_batch(database, batch_id)
    except QianbaoError as error:
        raise typer.BadParameter(error.localized_message(), param_hint="--batch") from None
    finally:
        database.dispose()
    typer.echo(
        f"{done.voided} codes voided, {done.returned.format()} back to {done.merchant!r}; "
        f"{done.already_redeemed} were already redeemed"
    )


# --- the ledger's books ------------------------------------------------------------------

ledger_app = typer.Typer(help="The ledger's books.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("audit")
def ledger_audit() -> None:
    """Recompute every ledger account from its history and check the books: each balance
    equals its history, none is under its floor, each currency sums to zero. Exits 1 on
    any mismatch (for an operator's cron). With the sandbox card network and bank, their
    books are reconciled with the ledger's too (wallet/reconciliation.py). The limits'
    usage counters are compared with the history they stand for (wallet/limits.py)."""
    from qianbao.wallet import limits, reconciliation
    from qianbao.wallet.ledger import audit as books

    database = Database(get_settings())
    try:
        result = database.run(books.audit)
        counters_off = database.run(limits.discrepancies)
        outside = None
        if reconciliation.uses_sandboxes(database.settings):
            outside = reconciliation.reconcile(database)
    finally:
        database.dispose()
    counters = [
        f"usage counters that differ from the history: {len(counters_off)}",
        *(f"  {finding}" for finding in counters_off),
    ]
    for line in _audit_report(result) + counters + (outside.report() if outside else []):
        typer.echo(line)
    if not result.sound or counters_off or (outside is not None and not outside.sound):
        raise typer.Exit(1)


def _audit_report(result: books.Audit) -> list[str]:
    totals = ", ".join(f"{code} {total}" for code, total in sorted(result.currency_totals.items()))
    lines = [
        f"accounts checked: {result.accounts_checked}",
        f"balances that differ from their history: {len(result.balances_off_history)}",
        *(f"  {account}" for account in result.balances_off_history),
        f"balances under their floor: {len(result.below_floor)}",
        *(f"  {account}" for account in result.below_floor),
        f"sum per currency, in minor units (each must be 0): {totals or 'no accounts'}",
    ]
    return [*lines, "ledger sound" if result.sound else "LEDGER NOT SOUND"]
