"""The staff JSON API: a staff member signs in for a bearer token and does, through
/api/v1/staff/..., every back-office action their role allows, with the same rules,
refusals and audit events as the pages (the same service functions run). A person's
token opens none of it, a staff token no person's operation, and the page cookie and the
API token are not each other. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from qianbao import access, audit, gate
from qianbao.access import Role
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated
from qianbao.identity import staff
from qianbao.notify import service as notify
from qianbao.risk import restrictions
from qianbao.verification import liveness
from tests.helpers import sign_up
from tests.risk.test_restrictions import photo
from tests.verification.flow_helpers import CHALLENGE, clip, new_person, passport
from tests.verification.test_flow import face_try, to_face_step
from tests.wallet.test_payments import fund

PASSWORD = "a long staff passphrase"
API = "/api/v1/staff"
NUMBER = "+44 7911 123456"  # new_person's number


def database(client: TestClient) -> Database:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    return db


def signed_in(client: TestClient, username: str, role: Role) -> dict[str, str]:
    """A new staff member of that role, signed in to the API: their Authorization header."""
    staff.create_staff(database(client), username, username.title(), PASSWORD, role)
    answer = client.post(f"{API}/sessions", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def problem(answer: Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["code"]


def events(db: Database, subject: str) -> list[tuple[str, str]]:
    def read(tx: Tx) -> list[audit.Event]:
        return audit.events(tx, subject)

    return [(event.action, event.actor) for event in reversed(db.run(read))]


def staff_id(client: TestClient, headers: dict[str, str]) -> str:
    found: str = client.get(f"{API}/me", headers=headers).json()["id"]
    return found


# --- signing in and out ------------------------------------------------------------------


def test_a_staff_member_signs_in_for_a_token_and_signs_out(
    client: TestClient, clock: FrozenClock
) -> None:
    db = database(client)
    staff.create_staff(db, "rita", "Rita", PASSWORD, "reviewer")
    answer = client.post(f"{API}/sessions", json={"username": "Rita ", "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["staff"]["username"] == "rita" and body["staff"]["role"] == "reviewer"
    assert "password_hash" not in str(body)
    lifetime = timedelta(seconds=db.settings.staff_api_token_seconds)
    assert body["expires_at"].startswith((clock.now() + lifetime).isoformat()[:19])
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get(f"{API}/me", headers=headers).json()["display_name"] == "Rita"
    assert client.delete(f"{API}/session", headers=headers).status_code == 204
    assert problem(client.get(f"{API}/me", headers=headers)) == (401, "staff.not_signed_in")


def test_a_wrong_password_is_refused_in_the_request_s_language_and_slows_the_name_down(
    client: TestClient,
) -> None:
    staff.create_staff(database(client), "rita", "Rita", PASSWORD, "reviewer")
    wrong = {"username": "rita", "password": "not the passphrase"}
    zh = {"Accept-Language": "zh-Hans"}
    refused = client.post(f"{API}/sessions", json=wrong, headers=zh)
    assert problem(refused) == (401, "staff.login_failed")
    assert refused.json()["message"] != "Wrong username or password."  # translated
    nobody = client.post(f"{API}/sessions", json={"username": "nobody", "password": "x" * 12})
    assert problem(nobody) == (401, "staff.login_failed")  # no hint that "rita" exists
    for _ in range(4):
        client.post(f"{API}/sessions", json=wrong)
    # The back office's throttle: past five failures, even the right password waits.
    throttled = client.post(f"{API}/sessions", json={"username": "rita", "password": PASSWORD})
    assert problem(throttled) == (429, "staff.throttled")
    assert int(throttled.headers["Retry-After"]) >= 1


def test_the_page_login_and_the_api_share_one_throttle(client: TestClient) -> None:
    db = database(client)
    staff.create_staff(db, "rita", "Rita", PASSWORD, "reviewer")
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            staff.sign_in(db, "rita", "not the passphrase")
    throttled = client.post(f"{API}/sessions", json={"username": "rita", "password": PASSWORD})
    assert problem(throttled) == (429, "staff.throttled")


@pytest.mark.parametrize("field", ["username", "password"])
def test_bad_sign_in_input_is_a_4xx_with_a_code(client: TestClient, field: str) -> None:
    body = {"username": "rita", "password": PASSWORD, field: "ri\x00ta"}
    answer = client.post(f"{API}/sessions", json=body)
    assert 400 <= answer.status_code < 500 and answer.json()["code"]
    missing = client.post(f"{API}/sessions", json={"username": "rita"})
    assert problem(missing) == (422, "request.invalid")


def test_tokens_do_not_cross_between_people_staff_and_the_pages(client: TestClient) -> None:
    db = database(client)
    person = sign_up(db)
    support = signed_in(client, "sam", Role.SUPPORT)
    # A person's token opens no staff operation; a staff token no person's.
    as_person = {"Authorization": f"Bearer {person.token}"}
    assert problem(client.get(f"{API}/me", headers=as_person)) == (401, "staff.not_signed_in")
    lookup = client.get(f"{API}/people", params={"phone": NUMBER}, headers=as_person)
    assert problem(lookup) == (401, "staff.not_signed_in")
    assert problem(client.get("/api/v1/me", headers=support)) == (401, "session.invalid")
    assert problem(client.get("/api/v1/wallet", headers=support)) == (401, "session.invalid")
    # The back office's cookie is no API token, and the API token is no cookie.
    page_token, _ = staff.sign_in(db, "sam", PASSWORD)
    as_cookie_token = {"Authorization": f"Bearer {page_token}"}
    assert problem(client.get(f"{API}/me", headers=as_cookie_token)) == (
        401,
        "staff.not_signed_in",
    )
    api_token = support["Authorization"].removeprefix("Bearer ")
    page = client.get(
        "/admin/people",
        headers={"Cookie": f"qb_staff={api_token}", "Accept": "application/json"},
    )
    assert problem(page) == (401, "staff.not_signed_in")
    # A staff cookie sent to the API opens nothing either: the API reads only the bearer.
    cookie_only = client.get(f"{API}/me", headers={"Cookie": f"qb_staff={page_token}"})
    assert problem(cookie_only) == (401, "staff.not_signed_in")


def test_a_token_ends_when_unused_and_at_its_end(client: TestClient, clock: FrozenClock) -> None:
    settings = database(client).settings
    idle, absolute = settings.staff_api_token_idle_seconds, settings.staff_api_token_seconds
    headers = signed_in(client, "sam", Role.SUPPORT)
    elapsed, step = 0, idle - 60
    while elapsed + step < absolute:  # used before it idles, it lives to its end
        clock.advance(seconds=step)
        elapsed += step
        assert client.get(f"{API}/me", headers=headers).status_code == 200, elapsed
    clock.advance(seconds=absolute - elapsed)
    assert problem(client.get(f"{API}/me", headers=headers)) == (401, "staff.not_signed_in")
    unused = signed_in(client, "sue", Role.SUPPORT)
    clock.advance(seconds=idle)
    assert problem(client.get(f"{API}/me", headers=unused)) == (401, "staff.not_signed_in")


def test_every_staff_operation_refuses_other_roles_people_and_no_token(
    client: TestClient,
) -> None:
    """From the app's own route table: each staff operation answers a role its line does
    not admit 403 ``staff.role``, a person's token and no token 401, before any handler
    runs (so a made-up id is never looked up for them)."""
    tokens = {role: signed_in(client, f"t-{role.value.replace('_', '-')}", role) for role in Role}
    person = {"Authorization": f"Bearer {sign_up(database(client)).token}"}
    operations = [
        (method, path)
        for method, path in gate.app_routes(client.app)  # type: ignore[arg-type]
        if path.startswith(f"{API}/") and path != f"{API}/sessions"
    ]
    assert len(operations) >= 19
    for method, path in operations:
        who = access.declared(method, path)
        assert who is not None and who.kind == "staff", (method, path)
        url = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
        for role, headers in tokens.items():
            if not who.admits_role(role):
                refused = client.request(method, url, headers=headers, json={})
                assert problem(refused) == (403, "staff.role"), (method, path, role)
        for headers in (person, {}):
            refused = client.request(method, url, headers=headers, json={})
            assert problem(refused) == (401, "staff.not_signed_in"), (method, path)


# --- reviewer ------------------------------------------------------------------------------


def test_a_reviewer_works_a_case_through_the_api(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = database(client)
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    db.settings.face_match_threshold, db.settings.face_review_margin = 0.45, 0.44
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    assert face_try(db, person.id, case_id, clip("astronaut")) == "review"
    reviewer = signed_in(client, "rita", Role.REVIEWER)

    queue = client.get(f"{API}/reviews", headers=reviewer).json()
    assert [item["id"] for item in queue] == [str(case_id)]
    assert queue[0]["reason"] == "face.borderline" and queue[0]["reason_text"]
    assert passport().document_number not in str(queue)  # masked in the queue
    case = client.get(f"{API}/reviews/{case_id}", headers=reviewer).json()
    assert case["status"] == "review"
    assert case["document"]["document_number"] == passport().document_number  # whole here
    assert case["match_at_or_below"] < case["no_match_above"]
    image = client.get(case["images"][0]["path"], headers=reviewer)
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
    assert image.headers["cache-control"] == "no-store"

    decision = f"{API}/reviews/{case_id}/decision"
    no_note = client.post(
        decision, json={"decision": "approve", "reason": "other"}, headers=reviewer
    )
    assert problem(no_note) == (422, "review.note_required")
    unknown = client.post(
        decision, json={"decision": "approve", "reason": "nope"}, headers=reviewer
    )
    assert problem(unknown) == (422, "review.reason")
    approved = client.post(
        decision,
        json={"decision": "approve", "reason": "face_matches", "note": "same nose"},
        headers=reviewer,
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "verified"
    assert [(d["reviewer"], d["decision"], d["note"]) for d in body["decisions"]] == [
        ("Rita", "approve", "same nose")
    ]
    again = client.post(
        decision, json={"decision": "reject", "reason": "other", "note": "x"}, headers=reviewer
    )
    assert problem(again) == (409, "review.decided")
    assert client.get(f"{API}/reviews", headers=reviewer).json() == []
    missing = client.get(f"{API}/reviews/{uuid.uuid4()}", headers=reviewer)
    assert problem(missing) == (404, "verification.case_not_found")
    # Other roles are refused the reviewer's work, before anything is read.
    for role in (Role.RISK_OFFICER, Role.SUPPORT, Role.ADMIN):
        other = signed_in(client, f"x-{role.value.replace('_', '-')}", role)
        assert problem(client.get(f"{API}/reviews", headers=other)) == (403, "staff.role")
        tried = client.post(
            decision, json={"decision": "reject", "reason": "other", "note": "x"}, headers=other
        )
        assert problem(tried) == (403, "staff.role")


# --- risk officer ---------------------------------------------------------------------------


def test_a_risk_officer_freezes_and_releases_with_a_second_officer_above_the_threshold(
    client: TestClient, clock: FrozenClock
) -> None:
    db = database(client)
    person = new_person(db)
    fund(db, person.id, "60000")  # above the default threshold of 50,000 CNY
    fay = signed_in(client, "fay", Role.RISK_OFFICER)
    gus = signed_in(client, "gus", Role.RISK_OFFICER)
    freeze = {"phone": NUMBER, "kind": "frozen", "note": "card fraud"}
    no_note = client.post(f"{API}/restrictions", json={**freeze, "note": " "}, headers=fay)
    assert problem(no_note) == (422, "restriction.note_required")
    nobody = client.post(
        f"{API}/restrictions", json={**freeze, "phone": "+44 7912 345678"}, headers=fay
    )
    assert problem(nobody) == (404, "account.not_found")
    bad_phone = client.post(f"{API}/restrictions", json={**freeze, "phone": "12"}, headers=fay)
    assert bad_phone.status_code == 422 and bad_phone.json()["code"].startswith("phone.")
    made = client.post(f"{API}/restrictions", json=freeze, headers=fay)
    assert made.status_code == 201, made.text
    row = made.json()
    assert (row["kind"], row["phone"], row["needs_two"]) == ("frozen", NUMBER, True)
    assert row["held"] == {"currency": "CNY", "value": "60000.00"}
    found = db.run(lambda tx: restrictions.active(tx, person.id))
    assert found is not None and str(found.id) == row["id"]
    listed = client.get(f"{API}/restrictions", headers=fay).json()
    assert [item["id"] for item in listed] == [row["id"]]

    release = f"{API}/restrictions/{row['id']}/release"
    clock.advance(seconds=1)
    first = client.post(release, json={"note": "docs ok"}, headers=fay)
    assert first.status_code == 200 and first.json()["lifted"] is False
    assert first.json()["restriction"]["release_approved_by"] == staff_id(client, fay)
    twice = client.post(release, json={"note": "still ok"}, headers=fay)
    assert problem(twice) == (409, "freeze.second_approver")
    clock.advance(seconds=1)
    second = client.post(release, json={"note": "agreed"}, headers=gus)
    assert second.json()["lifted"] is True and second.json()["restriction"]["lifted_at"]
    assert db.run(lambda tx: restrictions.active(tx, person.id)) is None
    fay_id, gus_id = staff_id(client, fay), staff_id(client, gus)
    assert events(db, f"restriction:{row['id']}") == [
        ("restriction.imposed", f"staff:{fay_id}"),
        ("freeze.release_approved", f"staff:{fay_id}"),
        ("restriction.lifted", f"staff:{gus_id}"),
    ]
    sms = db.run(lambda tx: notify.read_outbox(tx, "+447911123456", 2))
    assert "lifted" in sms[0].body and "frozen" in sms[1].body
    lifted = client.post(release, json={"note": "x"}, headers=gus)
    assert problem(lifted) == (409, "restriction.lifted")
    unknown = client.post(
        f"{API}/restrictions/{uuid.uuid4()}/release", json={"note": "x"}, headers=gus
    )
    assert problem(unknown) == (404, "restriction.not_found")
    for role in (Role.REVIEWER, Role.SUPPORT, Role.ADMIN):
        other = signed_in(client, f"x-{role.value.replace('_', '-')}", role)
        tried = client.post(f"{API}/restrictions", json=freeze, headers=other)
        assert problem(tried) == (403, "staff.role")
    assert db.run(lambda tx: restrictions.active(tx, person.id)) is None


def test_a_risk_officer_answers_an_appeal(client: TestClient) -> None:
    db = database(client)
    person = new_person(db)
    db.run(
        lambda tx: restrictions.impose(
            tx, person.id, "restricted", "shared_card", imposed_by="rule:test"
        )
    )
    appeal_id = restrictions.appeal(
        db, person.id, {"passport_page": photo(), "card_statement": photo()}, "my own card"
    )
    rob = signed_in(client, "rob", Role.RISK_OFFICER)
    queue = client.get(f"{API}/appeals", headers=rob).json()
    assert [item["id"] for item in queue] == [str(appeal_id)]
    appeal = client.get(f"{API}/appeals/{appeal_id}", headers=rob).json()
    assert appeal["message"] == "my own card" and appeal["status"] == "pending"
    assert sorted(doc["kind"] for doc in appeal["documents"]) == [
        "card_statement",
        "passport_page",
    ]
    document = client.get(appeal["documents"][0]["path"], headers=rob)
    assert document.status_code == 200 and document.content.startswith(b"\xff\xd8")
    decision = f"{API}/appeals/{appeal_id}/decision"
    no_note = client.post(decision, json={"decision": "keep"}, headers=rob)
    assert problem(no_note) == (422, "appeal.note_required")
    wrong = client.post(decision, json={"decision": "maybe", "note": "x"}, headers=rob)
    assert problem(wrong) == (422, "request.invalid")
    kept = client.post(
        decision, json={"decision": "keep", "note": "statement unclear"}, headers=rob
    )
    assert kept.status_code == 200 and kept.json()["status"] == "kept"
    assert db.run(lambda tx: restrictions.active(tx, person.id)) is not None
    assert events(db, f"appeal:{appeal_id}") == [("appeal.kept", f"staff:{staff_id(client, rob)}")]
    assert problem(client.post(decision, json={"decision": "lift", "note": "x"}, headers=rob)) == (
        409,
        "appeal.decided",
    )
    reviewer = signed_in(client, "rita", Role.REVIEWER)
    assert problem(client.get(f"{API}/appeals", headers=reviewer)) == (403, "staff.role")


# --- support --------------------------------------------------------------------------------


def test_support_looks_a_person_up_and_changes_nothing(client: TestClient) -> None:
    db = database(client)
    person = new_person(db)
    fund(db, person.id, "12.50")
    sam = signed_in(client, "sam", Role.SUPPORT)
    answer = client.get(f"{API}/people", params={"phone": NUMBER}, headers=sam)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    assert (found["id"], found["phone"], found["level"]) == (str(person.id), NUMBER, "unverified")
    assert found["level_text"] == "Unverified"
    assert found["balance"] == {"currency": "CNY", "value": "12.50"}
    assert found["case"] is None and found["restrictions"] == []
    local = client.get(
        f"{API}/people", params={"phone": "07911 123456", "country": "GB"}, headers=sam
    )
    assert local.json()["id"] == str(person.id)
    nobody = client.get(f"{API}/people", params={"phone": "+44 7912 345678"}, headers=sam)
    assert problem(nobody) == (404, "account.not_found")
    assert problem(client.get(f"{API}/people", headers=sam)) == (422, "request.invalid")
    for method, path in [
        ("POST", "/restrictions"),
        ("POST", f"/restrictions/{uuid.uuid4()}/release"),
        ("POST", f"/appeals/{uuid.uuid4()}/decision"),
        ("POST", f"/reviews/{uuid.uuid4()}/decision"),
        ("POST", "/members"),
        ("GET", "/audit-events"),
    ]:
        tried = client.request(method, f"{API}{path}", json={"note": "x"}, headers=sam)
        assert problem(tried) == (403, "staff.role"), (method, path)
    officer = signed_in(client, "rob", Role.RISK_OFFICER)  # risk officers look people up too
    assert client.get(f"{API}/people", params={"phone": NUMBER}, headers=officer).is_success
    admin = signed_in(client, "ada", Role.ADMIN)
    seen = client.get(f"{API}/people", params={"phone": NUMBER}, headers=admin)
    assert problem(seen) == (403, "staff.role")


# --- admin ----------------------------------------------------------------------------------


def test_an_administrator_manages_staff_and_reads_the_audit_log(
    client: TestClient, clock: FrozenClock
) -> None:
    ada = signed_in(client, "ada", Role.ADMIN)
    made = client.post(
        f"{API}/members",
        json={"username": "nia", "display_name": "Nia", "password": PASSWORD, "role": "support"},
        headers=ada,
    )
    assert made.status_code == 201, made.text
    nia = made.json()
    assert (nia["username"], nia["role"], nia["disabled"]) == ("nia", "support", False)
    taken = client.post(
        f"{API}/members",
        json={"username": "nia", "password": PASSWORD, "role": "support"},
        headers=ada,
    )
    assert problem(taken) == (409, "staff.exists")
    weak = client.post(
        f"{API}/members",
        json={"username": "ned", "password": "short", "role": "admin"},
        headers=ada,
    )
    assert weak.status_code == 422
    no_role = client.post(
        f"{API}/members", json={"username": "ned", "password": PASSWORD, "role": "god"}, headers=ada
    )
    assert problem(no_role) == (422, "request.invalid")
    listed = client.get(f"{API}/members", headers=ada).json()
    assert sorted(member["username"] for member in listed) == ["ada", "nia"]

    clock.advance(seconds=1)  # the audit log's order is its events' times
    nia_token = client.post(f"{API}/sessions", json={"username": "nia", "password": PASSWORD})
    as_nia = {"Authorization": f"Bearer {nia_token.json()['token']}"}
    changed = client.put(
        f"{API}/members/{nia['id']}/role", json={"role": "risk_officer"}, headers=ada
    )
    assert changed.json()["role"] == "risk_officer"
    assert client.get(f"{API}/me", headers=as_nia).json()["role"] == "risk_officer"  # at once
    own = client.put(
        f"{API}/members/{staff_id(client, ada)}/role", json={"role": "reviewer"}, headers=ada
    )
    assert problem(own) == (409, "staff.self")
    clock.advance(seconds=1)
    unknown = client.post(f"{API}/members/{uuid.uuid4()}/disable", headers=ada)
    assert problem(unknown) == (404, "staff.not_found")
    disabled = client.post(f"{API}/members/{nia['id']}/disable", headers=ada)
    assert disabled.json()["disabled"] is True
    assert problem(client.get(f"{API}/me", headers=as_nia)) == (401, "staff.not_signed_in")

    log = client.get(f"{API}/audit-events", params={"subject": f"staff:{nia['id']}"}, headers=ada)
    assert [(e["action"], e["actor"]) for e in reversed(log.json())] == [
        ("staff.created", f"staff:{staff_id(client, ada)}"),
        ("staff.role_changed", f"staff:{staff_id(client, ada)}"),
        ("staff.disabled", f"staff:{staff_id(client, ada)}"),
    ]
    assert log.json()[1]["details"] == {"from": "support", "to": "risk_officer"}
    assert len(client.get(f"{API}/audit-events", params={"limit": 1}, headers=ada).json()) == 1
    too_many = client.get(f"{API}/audit-events", params={"limit": 5000}, headers=ada)
    assert problem(too_many) == (422, "request.invalid")
    for role in (Role.REVIEWER, Role.RISK_OFFICER, Role.SUPPORT):
        other = signed_in(client, f"x-{role.value.replace('_', '-')}", role)
        assert problem(client.get(f"{API}/members", headers=other)) == (403, "staff.role")
        tried = client.post(f"{API}/members/{nia['id']}/disable", headers=other)
        assert problem(tried) == (403, "staff.role")
