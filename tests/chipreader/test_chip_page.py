"""The chip page tells a person what the phone or a reader does, asks for no hex, and
moves on to the face step once the reader has sent the chip to the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qianbao.chipreader.client import read_and_submit
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.verification import face, liveness, trust_store
from tests.api_helpers import outbox_code
from tests.chipreader.simulated_chip import SimulatedPassport
from tests.chipreader.test_reader import zone_key
from tests.verification.chip_vectors import build_chip
from tests.verification.flow_helpers import (
    CHALLENGE,
    TODAY,
    accept_synthetic_clips,
    page_image,
    passport,
)
from tests.web.test_pages import csrf, sign_up_by_form

PAGE = "/me/verify/passport-chip"


def start_on_the_page(client: TestClient) -> str:
    sign_up_by_form(client)
    token = csrf(client, PAGE)
    started = client.post(PAGE + "/start", data={"csrf": token})
    assert started.status_code == 200 and started.url.path == PAGE
    return str(started.text)


def test_the_page_says_what_the_phone_and_the_reader_do_and_asks_for_no_hex(
    client: TestClient,
) -> None:
    page = start_on_the_page(client)
    assert 'data-testid="chip-phone"' in page and 'data-testid="chip-reader"' in page
    assert "qianbao chip read --document-number" in page
    assert "--server http://127.0.0.1:8000" in page  # the server's public address
    assert "<textarea" not in page and 'type="file"' not in page
    assert "hexadecimal" not in page
    switched = client.post(
        "/language", data={"csrf": csrf(client, PAGE), "language": "zh_Hans", "next": PAGE}
    )
    chinese = switched.text
    assert "护照" in chinese and "Hold the top of the phone" not in chinese


def test_the_old_upload_forms_are_gone_and_the_api_still_takes_the_files(
    client: TestClient,
) -> None:
    start_on_the_page(client)
    token = csrf(client, PAGE)
    gone = client.post(PAGE + "/files", data={"csrf": token}, files={"sod": ("x", b"x")})
    assert gone.status_code in (404, 405)


def test_once_the_reader_has_sent_the_chip_the_page_moves_on_to_confirm(
    client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    accept_synthetic_clips(db.settings)
    chip = build_chip(passport(), face.cut_portrait(page_image()))
    for der in chip.cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=TODAY))  # type: ignore[misc]
    start_on_the_page(client)
    # The reader signs in through the API as the same person: a second session.
    clock.advance(seconds=61)  # past the sign-up code's resend wait
    from_api = TestClient(client.app, base_url="http://127.0.0.1")
    from_api.headers["Authorization"] = f"Bearer {api_log_in(from_api)}"
    done = read_and_submit(from_api, SimulatedPassport(chip, zone_key()), zone_key())
    assert done.case["status"] == "confirm"
    moved = client.get(PAGE)
    assert moved.url.path == "/me/verify/passport-face"
    assert passport().surname in moved.text
    # Still the chip flow by name, not "Verify face" (the flow without the chip).
    assert "<title>Passport chip & face verification · Qianbao</title>" in moved.text
    assert "<h1>Passport chip & face verification</h1>" in moved.text
    assert "Verify face" not in moved.text


def api_log_in(api: TestClient) -> str:
    """The API token of the person signed up on the page (same number), as the app or
    the reader gets it: an SMS code to log in."""
    phone = {"country": "GB", "number": "07911 123456"}
    sent = api.post("/api/v1/auth/sms-codes", json={**phone, "purpose": "login"})
    assert sent.status_code == 201, sent.text
    code = outbox_code(api, "+447911123456")
    signed = api.post("/api/v1/auth/sessions", json={**phone, "purpose": "login", "code": code})
    assert signed.status_code in (200, 201), signed.text
    return str(signed.json()["token"])
