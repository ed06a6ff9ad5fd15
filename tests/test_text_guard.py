"""Control characters are refused at the edge with a 4xx that names the field, whatever
the route and whatever the database (a NUL reached PostgreSQL, which gave a server error
with the statement in the log)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api_helpers import api_sign_up, bearer
from tests.web.test_pages import csrf


def test_a_nul_in_a_json_field_is_a_422_that_names_the_field(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/auth/password-sessions",
        json={"login": "07911\x00123456", "country": "GB", "password": "x" * 10},
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "request.control_characters"
    assert answer.json()["details"] == {"field": "login"}


def test_nested_fields_query_strings_and_forms_are_checked_too(client: TestClient) -> None:
    nested = client.post("/api/v1/password-strength", json={"password": "a\x1bb"})
    assert nested.json()["details"] == {"field": "password"}
    query = client.get("/api/v1/calling-codes", params={"q": "\x00"})
    assert (query.status_code, query.json()["details"]) == (422, {"field": "q"})
    form = client.post(
        "/api/v1/auth/number-check", data={"country": "GB", "number": "07911\x07123456"}
    )
    assert (form.status_code, form.json()["details"]) == (422, {"field": "number"})


def test_the_refusal_speaks_the_request_s_language(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/password-strength",
        json={"password": "\x00"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert answer.status_code == 422 and "NUL" in answer.json()["message"]
    assert (
        answer.json()["message"]
        != client.post("/api/v1/password-strength", json={"password": "\x00"}).json()["message"]
    )


def test_tabs_and_new_lines_are_text(client: TestClient) -> None:
    answer = client.post("/api/v1/password-strength", json={"password": "two\nlines\tand tab"})
    assert answer.status_code == 200


def jpeg_with_nuls() -> bytes:
    """A real photo: its bytes hold NULs and every other control character."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(buffer, "JPEG")
    data = buffer.getvalue()
    assert b"\x00" in data
    return data


def test_a_control_character_in_a_multipart_text_field_is_refused(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    answer = client.post(
        "/api/v1/wallet/appeals",
        headers=auth,
        data={"message": "my own card\x00"},
        files={"passport_page": ("page.jpg", jpeg_with_nuls(), "image/jpeg")},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "request.control_characters"
    assert answer.json()["details"] == {"field": "message"}


def test_a_file_s_bytes_are_not_text_and_reach_the_handler(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    answer = client.post(
        "/api/v1/wallet/appeals",
        headers=auth,
        data={"message": "my own card"},
        files={"passport_page": ("page.jpg", jpeg_with_nuls(), "image/jpeg")},
    )
    # The handler read the whole photo: the account has no restriction to appeal.
    assert answer.status_code == 409 and answer.json()["code"] == "appeal.nothing"


def test_a_large_upload_is_handed_on_whole_after_the_scan(client: TestClient) -> None:
    """Past the in-memory limit the body is kept on disk while scanned, and the handler
    still reads every byte (a photo over the upload limit is refused by its size)."""
    auth = bearer(api_sign_up(client)["token"])
    settings = client.app.state.settings  # type: ignore[attr-defined]
    settings.verification_max_upload_bytes = 3 * 1024 * 1024
    big = jpeg_with_nuls() + b"\x00" * (3 * 1024 * 1024)
    answer = client.post(
        "/api/v1/wallet/appeals",
        headers=auth,
        data={"message": "my own card"},
        files={"passport_page": ("page.jpg", big, "image/jpeg")},
    )
    assert answer.status_code == 422 and answer.json()["code"] == "image.too_large"


@pytest.mark.parametrize("override", ["\u202e", "\u202a", "\u2066", "\u2069"])
def test_an_order_subject_that_reorders_itself_is_refused(
    client: TestClient, override: str
) -> None:
    answer = client.post(
        "/api/v1/demo/shop/orders", json={"subject": f"Tea {override}gpj.exe", "amount": "1.00"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "text.direction_controls"
    assert answer.json()["details"] == {"field": "subject"}


def test_the_direction_refusal_speaks_chinese_and_right_to_left_text_is_welcome(
    client: TestClient,
) -> None:
    chinese = client.post(
        "/api/v1/demo/shop/orders",
        json={"subject": "\u202eTea", "amount": "1.00"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert chinese.status_code == 422 and "U+202E" in chinese.json()["message"]
    assert (
        chinese.json()["message"]
        != (
            client.post("/api/v1/demo/shop/orders", json={"subject": "\u202eTea", "amount": "1.00"})
        ).json()["message"]
    )
    # Arabic with its right-to-left mark is ordinary text, not a trick.
    arabic = client.post(
        "/api/v1/demo/shop/orders", json={"subject": "شاي \u200f2", "amount": "1.00"}
    )
    assert arabic.status_code == 201 and arabic.json()["subject"] == "شاي \u200f2"


def test_an_appeal_message_the_reviewer_would_read_backwards_is_refused(
    client: TestClient,
) -> None:
    auth = bearer(api_sign_up(client)["token"])
    answer = client.post(
        "/api/v1/wallet/appeals",
        headers=auth,
        data={"message": "refund \u202e001 YNC"},
        files={"passport_page": ("page.jpg", jpeg_with_nuls(), "image/jpeg")},
    )
    assert answer.status_code == 422 and answer.json()["code"] == "text.direction_controls"
    assert answer.json()["details"] == {"field": "message"}


def test_the_demo_shop_page_shows_the_direction_refusal_in_the_form(client: TestClient) -> None:
    token = csrf(client, "/demo/shop")
    answer = client.post(
        "/demo/shop/orders", data={"csrf": token, "amount": "1.00", "subject": "\u202eTea"}
    )
    assert answer.status_code == 422
    assert "changes the direction of the text" in answer.text


def test_a_browser_s_mixed_case_boundary_is_read_as_sent(client: TestClient) -> None:
    boundary = "----WebKitFormBoundaryQx7MmZ"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="password"\r\n\r\n'
        "mine\x1b[2J\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    answer = client.post(
        "/api/v1/password-strength",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert answer.status_code == 422 and answer.json()["code"] == "request.control_characters"
    assert answer.json()["details"] == {"field": "password"}
