"""The trade API's rules that need the server's own clock or several requests at once:
requests signed here by Alipay's documented rule with ``cryptography`` (not the SDK) and
answered by the gateway's service. Unpaid trades time out, paid ones finish after the
refund window, a replayed refund moves money once, racing refunds never pass the order,
and the operator's commands set an app up."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qianbao import cli, jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import demo, oauth, protocol, service
from qianbao.openplatform.merchants import service as merchants
from qianbao.openplatform.oidc import service as oidc
from qianbao.settings import Settings, get_settings
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import service as payments
from tests.openplatform.gateway.shop import new_shop_keys, paying_person, signed_request
from tests.wallet.test_pay_for_me import FRIEND, log_in_by_form, verified_friend
from tests.wallet.test_payments import PIN, cny

SHOP = "Teahouse Online"


class App:
    def __init__(self, db: Database) -> None:
        self.db, self.keys = db, new_shop_keys()
        db.run(lambda tx: payments.create_merchant(tx, SHOP))
        self.app_id = db.run(lambda tx: merchants.create_app(tx, SHOP, "web")).app_id
        db.run(lambda tx: merchants.set_app_key(tx, self.app_id, self.keys.public_pem))

    def params(self, method: str, biz: dict[str, str]) -> dict[str, str]:
        return signed_request(self.db, self.app_id, self.keys, method, protocol_json(biz))

    def ask(self, method: str, biz: dict[str, str]) -> dict[str, Any]:
        return answer_of(self.db, self.params(method, biz))


def protocol_json(biz: dict[str, str]) -> str:
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in biz.items()) + "}"


def answer_of(db: Database, params: dict[str, str]) -> dict[str, Any]:
    text = service.answer(db, params).text
    key = protocol.response_key(params.get("method", ""))
    inner = text[len(key) + 4 : text.rindex(',"sign":')]  # the signed text, as the SDK cuts it
    body: dict[str, Any] = json.loads(inner)
    return body


@pytest.fixture
def app(db: Database) -> App:
    return App(db)


def pay(db: Database, clock: FrozenClock, qr_code: str, number: str = "07911 123456") -> uuid.UUID:
    person = paying_person(db, clock, number=number)
    payments.pay_with_balance(db, person, uuid.UUID(qr_code.rsplit("/", 1)[1]), PIN)
    return person


def test_an_unpaid_trade_times_out_and_a_paid_one_finishes(
    app: App, db: Database, clock: FrozenClock
) -> None:
    made = app.ask(
        "alipay.trade.precreate",
        {"out_trade_no": "T1", "total_amount": "5.00", "subject": "tea", "timeout_express": "5m"},
    )
    clock.advance(minutes=5)
    jobs.close_expired_orders(db)
    status = app.ask("alipay.trade.query", {"out_trade_no": "T1"})["trade_status"]
    assert status == "TRADE_CLOSED"
    bad = app.ask(
        "alipay.trade.precreate",
        {"out_trade_no": "T2", "total_amount": "5.001", "subject": "tea"},
    )
    assert (bad["code"], bad["sub_code"]) == ("40004", "ACQ.INVALID_PARAMETER")
    assert made["code"] == "10000"

    paid = app.ask(
        "alipay.trade.precreate", {"out_trade_no": "T3", "total_amount": "5.00", "subject": "tea"}
    )
    pay(db, clock, paid["qr_code"])
    clock.advance(days=db.settings.gateway_refund_window_days)
    status = app.ask("alipay.trade.query", {"out_trade_no": "T3"})["trade_status"]
    assert status == "TRADE_FINISHED"
    late = app.ask(
        "alipay.trade.refund",
        {"out_trade_no": "T3", "refund_amount": "1.00", "out_request_no": "R"},
    )
    assert late["sub_code"] == "ACQ.TRADE_HAS_FINISHED"


def test_a_replayed_refund_moves_money_once_and_racing_refunds_never_pass_the_order(
    app: App, db: Database, clock: FrozenClock
) -> None:
    made = app.ask(
        "alipay.trade.precreate", {"out_trade_no": "R1", "total_amount": "100.00", "subject": "x"}
    )
    person = pay(db, clock, made["qr_code"])
    request = app.params(
        "alipay.trade.refund",
        {"out_trade_no": "R1", "refund_amount": "10.00", "out_request_no": "A"},
    )
    first, replay = answer_of(db, request), answer_of(db, dict(request))
    assert (first["fund_change"], replay["fund_change"]) == ("Y", "N")

    # Twelve refunds of 10.00 at once, each its own request number: 90.00 is left, so
    # nine go through and three are refused, whatever the order.
    racing = [
        app.params(
            "alipay.trade.refund",
            {"out_trade_no": "R1", "refund_amount": "10.00", "out_request_no": f"B{n}"},
        )
        for n in range(12)
    ]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda params: answer_of(db, params), racing))
    done = [a for a in answers if a["code"] == "10000"]
    refused = [a for a in answers if a["code"] != "10000"]
    assert len(done) == 9 and {a.get("sub_code") for a in refused} <= {
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        "ACQ.TRADE_HAS_CLOSE",
        "ACQ.SYSTEM_ERROR",
    }
    assert db.run(lambda tx: payments.wallet(tx, person)).balance == cny("500.00")
    status = app.ask("alipay.trade.query", {"out_trade_no": "R1"})["trade_status"]
    assert status == "TRADE_CLOSED"  # fully refunded
    assert db.run(ledger_audit.audit).sound


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("QIANBAO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    # `qianbao demo` turns demo mode on in the process's environment; set here, it is
    # taken out again after the test instead of leaking into every later one.
    monkeypatch.setenv("QIANBAO_DEMO", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_operator_sets_an_app_up_from_the_command_line(
    cli_env: None, db: Database, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(cli.app, ["admin", "create-merchant", SHOP]).exit_code == 0
    made = runner.invoke(cli.app, ["admin", "create-merchant-app", SHOP, "--name", "web"])
    found = re.search(r"app_id (\d{16})", made.output)
    assert made.exit_code == 0 and found, made.output
    app_id = found.group(1)

    weak = tmp_path / "weak.pem"
    weak.write_text(new_shop_keys(1024).public_pem)
    refused = runner.invoke(cli.app, ["admin", "set-app-key", app_id, str(weak)])
    assert refused.exit_code != 0 and "2048" in refused.output
    good = tmp_path / "app.pem"
    keys = new_shop_keys()
    good.write_text(signing.bare_base64(keys.public_pem))  # the one-line form works too
    assert runner.invoke(cli.app, ["admin", "set-app-key", app_id, str(good)]).exit_code == 0

    shown = runner.invoke(cli.app, ["admin", "platform-key"])
    assert shown.exit_code == 0 and "(current)" in shown.output
    line = re.search(r"# as one line: (\S+)", shown.output)
    assert line is not None
    biz = protocol_json({"out_trade_no": "none"})
    asked = signed_request(db, app_id, keys, "alipay.trade.query", biz)
    answer = service.answer(db, asked).text
    inner = answer[answer.index(":") + 1 : answer.rindex(',"sign":')]
    signature = answer[answer.rindex(':"') + 2 : -2]
    public = signing.load_public_key(line.group(1), 2048)
    assert signing.verify(public, inner, signature)  # the key shown signs the answers

    rotated = runner.invoke(cli.app, ["admin", "platform-key", "--publish-next"])
    assert "(next)" in rotated.output and "(current)" in rotated.output


def test_page_pay_at_the_cashier_page_sends_the_person_back_to_the_shop(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    app = App(db)
    params = app.params(
        "alipay.trade.page.pay",
        {
            "out_trade_no": "WEB1",
            "total_amount": "18.00",
            "subject": "tea",
            "product_code": "FAST_INSTANT_TRADE_PAY",
        },
    )
    params["return_url"] = "https://shop.example/paid"
    params["sign"] = signing.sign(app.keys.private, signing.sign_content(params))
    sent = client.get("/gateway.do", params=params, follow_redirects=False)
    assert sent.status_code == 302
    cashier = urllib.parse.urlsplit(sent.headers["location"]).path

    verified_friend(db, clock, FRIEND, "100")
    clock.advance(seconds=61)
    log_in_by_form(client, db, FRIEND)
    page = client.get(cashier)
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    paid = client.post(
        cashier,
        data={"csrf": token, "source": "balance", "payment_password": PIN},
        follow_redirects=False,
    )
    # The shop is another origin: a page that moves on by itself (a browser checks the
    # cashier form's form-action 'self' on any redirect that follows it).
    assert paid.status_code == 200 and 'data-testid="continue"' in paid.text
    found = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', paid.text)
    assert found is not None
    back = html.unescape(found.group(1))
    assert back.startswith("https://shop.example/paid?")
    returned = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    assert returned["out_trade_no"] == "WEB1" and returned["total_amount"] == "18.00"
    platform = next(k for k in db.run(merchants.platform_keys) if k.state == "current")
    public = signing.load_public_key(platform.public_key, 2048)
    text = signing.sign_content(returned, exclude=("sign", "sign_type"))
    assert signing.verify(public, text, returned["sign"])


def test_common_parameters_are_checked_before_anything_runs(app: App, db: Database) -> None:
    query = app.params("alipay.trade.query", {"out_trade_no": "none"})
    for name, sub_code in (("sign", "isv.missing-sign"), ("app_id", "isv.missing-app-id")):
        answer = answer_of(db, {k: v for k, v in query.items() if k != name})
        assert (answer["code"], answer["sub_code"]) == ("40001", sub_code)
    legacy = app.params("alipay.trade.query", {"out_trade_no": "none"})
    legacy["sign_type"] = "RSA"
    assert answer_of(db, legacy)["sub_code"] == "isv.invalid-signature-type"
    unknown = app.params("alipay.trade.nothing", {})
    text = service.answer(db, unknown).text
    assert text.startswith('{"error_response":') and "isv.invalid-method" in text
    assert app.ask("alipay.trade.query", {})["sub_code"] == "ACQ.INVALID_PARAMETER"


def test_the_operator_links_an_app_to_a_log_in_shop(cli_env: None, db: Database) -> None:
    runner = CliRunner()
    db.run(lambda tx: payments.create_merchant(tx, SHOP))
    app_id = db.run(lambda tx: merchants.create_app(tx, SHOP, "web")).app_id
    db.run(
        lambda tx: oidc.register_shop(
            tx,
            client_id="tea-house",
            name_en="Tea",
            name_zh="茶",
            redirect_uris=["https://tea.example/cb"],
        )
    )
    unknown = runner.invoke(cli.app, ["admin", "link-app-client", app_id, "nobody"])
    assert unknown.exit_code != 0 and db.run(lambda tx: oauth.linked_client(tx, app_id)) is None
    linked = runner.invoke(cli.app, ["admin", "link-app-client", app_id, "tea-house"])
    assert linked.exit_code == 0, linked.output
    assert db.run(lambda tx: oauth.linked_client(tx, app_id)) == "tea-house"


def test_demo_seeding_registers_the_marketplace_app_with_its_demo_key(
    cli_env: None, db: Database
) -> None:
    runner = CliRunner()
    for _ in range(2):  # every demo start seeds again: the same app, no error
        seeded = runner.invoke(cli.app, ["demo"])
        assert seeded.exit_code == 0, seeded.output
        assert f"app_id {demo.DEMO_APP_ID}" in seeded.output
    current = next(k for k in db.run(merchants.platform_keys) if k.state == "current")
    assert signing.bare_base64(current.public_key) in seeded.output
    [key] = db.run(lambda tx: merchants.app_verification_keys(tx, demo.DEMO_APP_ID))
    shipped = Path(__file__).parents[3] / "examples/marketplace/demo-keys/app_public_key.pem"
    assert signing.public_pem(key) == shipped.read_text()
    assert db.run(lambda tx: oauth.linked_client(tx, demo.DEMO_APP_ID)) == "demo-marketplace"
