"""Driving the JSON API like a mobile app would."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

AGREEMENT = "2026-11-01"


def outbox_code(client: TestClient, e164: str) -> str:
    messages = client.get("/api/v1/demo/outbox", params={"phone": e164}).json()
    match = re.search(r"\b(\d{4,8})\b", messages[0]["body"])
    assert match
    return match.group(1)


def api_sign_up(
    client: TestClient,
    number: str = "07911 123456",
    country: str = "GB",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    phone = {"country": country, "number": number}
    check = client.post("/api/v1/auth/number-check", json=phone)
    assert check.status_code == 200, check.text
    sent = client.post(
        "/api/v1/auth/sms-codes",
        json={**phone, "purpose": "signup", "agreement_version": AGREEMENT},
        headers=headers,
    )
    assert sent.status_code == 201, sent.text
    code = outbox_code(client, check.json()["e164"])
    signed = client.post(
        "/api/v1/auth/sessions",
        json={**phone, "purpose": "signup", "code": code},
        headers=headers,
    )
    assert signed.status_code == 201, signed.text
    body: dict[str, Any] = signed.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
