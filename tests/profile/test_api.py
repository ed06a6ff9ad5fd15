"""The personal information JSON API, driven like the mobile app would."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api_helpers import api_sign_up, bearer

ZH = {"Accept-Language": "zh-CN"}
OVERSEAS_ADDRESS = {"state": "OVERSEAS", "city": "OVERSEAS", "street": "1 Main Street, Springfield"}


def _token(client: TestClient) -> dict[str, str]:
    return bearer(api_sign_up(client)["token"])


def test_occupations_are_listed_in_the_readers_language(client: TestClient) -> None:
    english = client.get("/api/v1/occupations")
    assert english.status_code == 200
    rows = english.json()
    assert len(rows) >= 20
    assert {"code": "company_employee", "label": "Company employee"} in rows
    assert rows[-1]["code"] == "other"
    chinese = client.get("/api/v1/occupations", headers=ZH).json()
    assert {"code": "company_employee", "label": "企业/公司职员"} in chinese
    assert {"code": "foreign_employee", "label": "外籍人士在华工作"} in chinese


def test_regions_and_their_cities(client: TestClient) -> None:
    states = client.get("/api/v1/regions").json()
    assert states[0] == {
        "code": "OVERSEAS",
        "name": "Overseas",
        "name_en": "Overseas",
        "name_zh": "海外",
        "single_city": True,
    }
    by_code = {row["code"]: row for row in states}
    assert by_code["440000"]["name"] == "Guangdong" and not by_code["440000"]["single_city"]
    assert {by_code[code]["name"] for code in ("810000", "820000", "710000")} == {
        "Hong Kong",
        "Macau",
        "Taiwan",
    }
    chinese = {row["code"]: row["name"] for row in client.get("/api/v1/regions", headers=ZH).json()}
    assert chinese["440000"] == "广东省" and chinese["OVERSEAS"] == "海外"

    cities = client.get("/api/v1/regions/440000/cities").json()
    assert {"code": "440100", "name": "Guangzhou", "name_en": "Guangzhou", "name_zh": "广州市"} in (
        cities
    )
    assert all(city["code"].startswith("44") for city in cities)
    overseas = client.get("/api/v1/regions/OVERSEAS/cities", headers=ZH).json()
    assert overseas == [
        {"code": "OVERSEAS", "name": "海外", "name_en": "Overseas", "name_zh": "海外"}
    ]
    unknown = client.get("/api/v1/regions/999999/cities")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "profile.unknown_region"


def test_personal_information_needs_a_session(client: TestClient) -> None:
    assert client.get("/api/v1/me/profile").status_code == 401
    refused = client.put("/api/v1/me/profile/occupation", json={"occupation": "student"})
    assert refused.status_code == 401
    assert client.put("/api/v1/me/profile/address", json=OVERSEAS_ADDRESS).status_code == 401


def test_from_incomplete_to_complete(client: TestClient) -> None:
    auth = _token(client)
    first = client.get("/api/v1/me/profile", headers=auth).json()
    assert first["complete"] is False
    assert first["status"] == "Incomplete"
    assert first["occupation"] is None and first["address"] is None
    assert first["missing"] == [
        {"field": "occupation", "label": "Occupation type"},
        {"field": "address", "label": "Address"},
    ]
    chosen = client.put(
        "/api/v1/me/profile/occupation", json={"occupation": "foreign_employee"}, headers=auth
    )
    assert chosen.status_code == 200
    assert chosen.json()["occupation"] == {
        "code": "foreign_employee",
        "label": "Foreign employee in China",
    }
    assert [m["field"] for m in chosen.json()["missing"]] == ["address"]

    saved = client.put("/api/v1/me/profile/address", json=OVERSEAS_ADDRESS, headers=auth)
    assert saved.status_code == 200
    body = saved.json()
    assert body["complete"] is True and body["status"] == "Complete" and body["missing"] == []
    assert body["address"]["location"] == "Overseas"
    assert body["address"]["street"] == "1 Main Street, Springfield"
    assert body["address"]["state"]["code"] == body["address"]["city"]["code"] == "OVERSEAS"

    chinese = client.get("/api/v1/me/profile", headers={**auth, **ZH}).json()
    assert chinese["status"] == "已完善"
    assert chinese["occupation"]["label"] == "外籍人士在华工作"
    assert chinese["address"]["location"] == "海外"


def test_a_mainland_address_in_both_languages(client: TestClient) -> None:
    auth = _token(client)
    address = {"state": "440000", "city": "440100", "street": "  天河路 385 号\n"}
    saved = client.put("/api/v1/me/profile/address", json=address, headers=auth).json()
    assert saved["address"]["street"] == "天河路 385 号"
    assert saved["address"]["location"] == "Guangzhou, Guangdong"
    assert saved["address"]["city"] == {
        "code": "440100",
        "name": "Guangzhou",
        "name_en": "Guangzhou",
        "name_zh": "广州市",
    }
    chinese = client.get("/api/v1/me/profile", headers={**auth, **ZH}).json()
    assert chinese["address"]["location"] == "广东省广州市"
    assert chinese["address"]["city"]["name"] == "广州市"
    assert chinese["missing"] == [{"field": "occupation", "label": "职业类型"}]
    assert chinese["status"] == "未完善"


def _put_address(client: TestClient, auth: dict[str, str], **changes: str) -> Any:
    response = client.put(
        "/api/v1/me/profile/address", json={**OVERSEAS_ADDRESS, **changes}, headers=auth
    )
    assert response.status_code == 422, response.text
    return response.json()


def test_refusals_have_stable_codes_and_leave_the_address_as_it_was(client: TestClient) -> None:
    auth = _token(client)
    client.put("/api/v1/me/profile/address", json=OVERSEAS_ADDRESS, headers=auth)
    cases = [
        ({"state": "999999"}, "profile.unknown_region"),
        ({"state": "440000", "city": "320100"}, "profile.city_not_in_region"),
        ({"state": "440000", "city": "OVERSEAS"}, "profile.city_not_in_region"),
        ({"street": "   "}, "profile.street_empty"),
        ({"street": "x" * 2000}, "profile.street_too_long"),
        # Refused at the edge, before the profile's own check, naming the field.
        ({"street": "1 Main\x00Street"}, "request.control_characters"),
    ]
    for changes, code in cases:
        problem = _put_address(client, auth, **changes)
        assert problem["code"] == code
        assert problem["message"]
    long = _put_address(client, auth, street="x" * 2000)
    assert long["details"] == {"field": "street", "max_length": 200, "length": 2000}
    assert "200" in long["message"]
    refused = client.put(
        "/api/v1/me/profile/occupation", json={"occupation": "astronaut"}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "profile.unknown_occupation"
    after = client.get("/api/v1/me/profile", headers=auth).json()
    assert after["address"]["street"] == OVERSEAS_ADDRESS["street"]
    assert after["occupation"] is None


def test_refusals_are_explained_in_chinese(client: TestClient) -> None:
    auth = {**_token(client), **ZH}
    problem = _put_address(client, auth, state="440000", city="320100")
    assert "广东省" in problem["message"]
    problem = _put_address(client, auth, street="x" * 2000)
    assert "200" in problem["message"]
    assert problem["message"].isascii() is False


def test_absurd_requests_get_the_generic_problem(client: TestClient) -> None:
    auth = _token(client)
    problem = _put_address(client, auth, street="x" * 20_000)
    assert problem["code"] == "request.invalid"
    response = client.put("/api/v1/me/profile/address", json={"state": "OVERSEAS"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["code"] == "request.invalid"
