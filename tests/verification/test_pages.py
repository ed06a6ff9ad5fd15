""" "Verify face" over HTTP: the JSON API a mobile app calls, the pages without script,
bad uploads, and the reviewers' back office."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qianbao.clock import FrozenClock
from qianbao.identity import staff
from qianbao.verification import liveness, service
from tests.api_helpers import api_sign_up, bearer, outbox_code
from tests.verification.flow_helpers import (
    CHALLENGE,
    accept_synthetic_clips,
    clip,
    page_image,
    passport,
)
from tests.verification.test_flow import face_try, to_face_step
from tests.verification.test_images import huge_png_header
from tests.web.test_pages import csrf, sign_up_by_form, zh

API = "/api/v1/verification"
FLOW = "/me/verify/passport-face"
ZH = {"Accept-Language": "zh-CN"}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def start(client: TestClient) -> tuple[dict[str, str], str]:
    auth = bearer(api_sign_up(client)["token"])
    case = client.post(f"{API}/passport-face", headers=auth)
    assert case.status_code == 200, case.text
    assert case.json()["status"] == "passport" and case.json()["step"] == 1
    return auth, case.json()["id"]


BAD_UPLOADS = {
    "pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "image.not_image"),
    "text named .jpg": (b"this is not a photo of a passport\n" * 40, "image.not_image"),
    "truncated jpeg": (None, "image.truncated"),
    "20000 x 20000 png": (huge_png_header(20_000, 20_000), "image.too_many_pixels"),
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_a_bad_upload_gets_its_reason_and_stores_nothing(client: TestClient, name: str) -> None:
    auth, case_id = start(client)
    data, code = BAD_UPLOADS[name]
    if data is None:
        buffer = io.BytesIO()
        page_image().save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    answer = client.post(
        f"{API}/passport-face/{case_id}/photo-page",
        headers={**auth, **ZH},
        files={"image": ("passport.jpg", data, "image/jpeg")},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code
    assert re.search(r"[\u4e00-\u9fff]", answer.json()["message"])  # said in Chinese
    after = client.get(API, headers=auth).json()
    assert after["status"] == "passport" and after["document"] is None


def test_a_30_mb_upload_is_refused_before_it_is_read(client: TestClient) -> None:
    auth, case_id = start(client)
    answer = client.post(
        f"{API}/passport-face/{case_id}/photo-page",
        headers=auth,
        files={"image": ("big.jpg", b"\xff\xd8\xff" + b"\0" * (30 * 1024 * 1024), "image/jpeg")},
    )
    assert answer.status_code == 422 and answer.json()["code"] == "image.too_large"


def test_the_face_step_needs_the_passport_first(client: TestClient) -> None:
    auth, case_id = start(client)
    frames = [
        ("frames", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(clip("astronaut"))
    ]
    answer = client.post(f"{API}/passport-face/{case_id}/face", headers=auth, files=frames)
    assert answer.status_code == 409 and answer.json()["code"] == "verification.wrong_step"
    stranger = client.post(f"{API}/passport-face/{uuid.uuid4()}/confirm", headers=auth)
    assert stranger.status_code == 404


def test_the_options_page_shows_three_ways_in_both_languages(client: TestClient) -> None:
    sign_up_by_form(client)
    english = client.get("/me/verify")
    assert english.status_code == 200
    for testid in ("option-chip", "option-face", "option-bank"):
        assert f'data-testid="{testid}"' in english.text
    assert "Passport chip &amp; face verification" in english.text or (
        "Passport chip & face verification" in english.text
    )
    token = csrf(client, "/me/verify")
    client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/me/verify"})
    chinese = client.get("/me/verify")
    assert zh("Verify face") in chinese.text and zh("Verify face") != "Verify face"
    assert zh("Mainland China bank card") in chinese.text


def test_the_pages_walk_the_steps_without_script(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps 1 (photo page read by OCR), confirm, 2 (frames) and 3, by plain forms."""
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(client.app.state.settings)  # type: ignore[attr-defined]
    sign_up_by_form(client)
    token = csrf(client, "/me/verify")
    assert client.post(f"{FLOW}/start", data={"csrf": token}).url.path == FLOW
    step1 = client.get(FLOW)
    assert 'aria-current="step"' in step1.text and 'id="page-form"' in step1.text

    read = client.post(
        f"{FLOW}/photo-page",
        data={"csrf": token},
        files={"image": ("page.png", png(page_image()), "image/png")},
    )
    assert read.status_code == 200, read.text[:3000]
    assert 'data-testid="read-document"' in read.text, read.text[:3000]
    assert client.post(f"{FLOW}/confirm", data={"csrf": token}).status_code == 200
    asked = client.post(f"{FLOW}/challenge", data={"csrf": token})
    assert 'data-action="blink"' in asked.text and 'data-action="turn_left"' in asked.text
    frames = [
        ("frames", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(clip("astronaut"))
    ]
    done = client.post(f"{FLOW}/face", data={"csrf": token}, files=frames)
    assert 'data-status="verified"' in done.text, re.findall(r"<main.*?</main>", done.text, re.S)[
        0
    ][:1500]
    center = client.get("/me/certification")
    assert 'data-testid="cert-name"' in center.text
    assert "status-verified" in center.text


def test_reviewers_sign_in_and_decide(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase")
    token = csrf(client, "/admin/login")
    wrong = client.post(
        "/admin/login", data={"csrf": token, "username": "rita", "password": "wrong password!"}
    )
    assert wrong.status_code == 401
    assert client.get("/admin/reviews", follow_redirects=False).status_code == 303
    signed = client.post(
        "/admin/login",
        data={"csrf": token, "username": "rita", "password": "a long reviewer passphrase"},
    )
    assert signed.url.path == "/admin/reviews"
    assert 'data-testid="queue-empty"' in signed.text
    # The customer session cookie does not open the back office, and vice versa.
    assert client.get(f"{API}").status_code == 401


def test_a_reviewer_sees_the_evidence_and_approves_by_form(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    db.settings.face_match_threshold, db.settings.face_review_margin = 0.45, 0.44
    auth, _ = start(client)
    person = client.get("/api/v1/me", headers=auth).json()["id"]
    person_id = uuid.UUID(person)
    case_id = to_face_step(db, person_id)
    assert face_try(db, person_id, case_id, clip("astronaut")) == "review"
    staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase")

    reviewer = TestClient(client.app, base_url="http://127.0.0.1")
    # Without a staff session the images stay closed.
    image_ids = [i for i, kind, _ in db.run(lambda tx: service.review_case(tx, case_id)).images]
    closed = reviewer.get(f"/admin/reviews/{case_id}/images/{image_ids[0]}")
    assert closed.url.path == "/admin/login" and not closed.content.startswith(b"\xff\xd8")
    token = csrf(reviewer, "/admin/login")
    reviewer.post(
        "/admin/login",
        data={"csrf": token, "username": "rita", "password": "a long reviewer passphrase"},
    )
    queue = reviewer.get("/admin/reviews")
    assert f"/admin/reviews/{case_id}" in queue.text
    case_page = reviewer.get(f"/admin/reviews/{case_id}")
    assert 'data-testid="face-distance"' in case_page.text
    assert passport().document_number in case_page.text  # the reviewer sees it whole
    image = reviewer.get(f"/admin/reviews/{case_id}/images/{image_ids[0]}")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
    assert image.headers["cache-control"] == "no-store"

    note_missing = reviewer.post(
        f"/admin/reviews/{case_id}/decision",
        data={"csrf": token, "decision": "approve", "reason": "other", "note": ""},
    )
    assert note_missing.status_code == 422 and 'data-code="review.note_required"' in (
        note_missing.text
    )
    decided = reviewer.post(
        f"/admin/reviews/{case_id}/decision",
        data={"csrf": token, "decision": "approve", "reason": "face_matches", "note": "ok"},
    )
    assert 'data-testid="decisions"' in decided.text and "Rita" in decided.text
    shown = client.get(f"{API}/identity", headers=auth)
    assert shown.status_code == 200
    assert shown.json()["document_number"].endswith(passport().document_number[-3:])
    assert passport().document_number not in shown.text


def test_the_birth_date_is_refused_as_payment_password_once_verified(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, clock: FrozenClock
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)
    auth, _ = start(client)
    person_id = uuid.UUID(client.get("/api/v1/me", headers=auth).json()["id"])
    case_id = to_face_step(db, person_id)
    assert face_try(db, person_id, case_id, clip("astronaut")) == "verified"
    clock.advance(seconds=61)
    sent = client.post("/api/v1/me/security-codes", headers=auth)
    assert sent.status_code in (200, 201, 202), sent.text
    code = outbox_code(client, "+447911123456")
    birthday = passport().birth_date.strftime("%y%m%d")
    answer = client.put(
        "/api/v1/me/payment-password",
        headers=auth,
        json={"new_password": birthday, "sms_code": code},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "paypw.birth_date"


def test_an_exif_rotated_photo_page_is_read_upright(client: TestClient) -> None:
    """Phones save the pixels sideways and say "rotate me" in EXIF: that must work."""
    auth, case_id = start(client)
    sideways = page_image().rotate(90, expand=True)  # as the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    sideways.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    answer = client.post(
        f"{API}/passport-face/{case_id}/photo-page",
        headers=auth,
        files={"image": ("IMG_0001.jpg", buffer.getvalue(), "image/jpeg")},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "confirm"
    assert body["document"]["surname"] == passport().surname.replace("<", " ")
    assert passport().document_number not in answer.text  # masked
