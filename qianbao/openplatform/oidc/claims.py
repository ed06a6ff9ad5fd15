"""Verified claims (OpenID Connect for Identity Assurance 1.0, final): what Qianbao knows
of a verified person, and the spec's selection of what a shop asked for.

The trust framework is NIST SP 800-63A (``nist_800_63A``); the assurance level each route
reaches is Qianbao's own reading of it:

- passport chip (the chip's signatures checked against the issuing state's CSCA) and a
  face match with liveness: ``IAL2`` (evidence validated cryptographically, biometric
  comparison remote);
- passport photo page and a face match with liveness: ``IAL1`` (the page is read from a
  photo; its genuineness is not validated to 800-63A's IAL2 strength);
- mainland bank card (the bank confirmed name, passport number and reserved phone):
  ``IAL1``.

Selection (the spec's section on requesting verified claims): only what was asked for
is returned; a constraint (``value``, ``values``, ``max_age``) inside ``verification``
that the data does not meet omits the whole ``verified_claims`` element; a claim that is
unknown or does not meet its constraint is left out; neither is an error. A
``verified_claims`` with no claim left is omitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

TRUST_FRAMEWORK: Final = "nist_800_63A"
ASSURANCE_LEVELS: Final = {"passport_chip": "IAL2", "passport_face": "IAL1", "bank_card": "IAL1"}
# Claims a shop may ask inside verified_claims: the raw ones, and two derived ones a
# shop may ask instead of the raw data (a yes/no on verification; over 18 from the
# verified birth date).
RAW_CLAIMS: Final = ("given_name", "family_name", "birthdate", "nationalities")
DERIVED_CLAIMS: Final = ("identity_verified", "age_over_18")
VERIFIED_CLAIMS: Final = RAW_CLAIMS + DERIVED_CLAIMS
EVIDENCE_TYPES: Final = ("document", "electronic_record")
DOCUMENT_TYPES: Final = ("passport",)
CHECK_METHODS: Final = ("vpip", "vcrypt", "bvr", "pvr", "data")
ELECTRONIC_RECORDS: Final = ("bank_account",)
_CONTROL_KEYS: Final = frozenset({"essential", "purpose", "value", "values", "max_age"})
ADULT_AGE: Final = 18


class ClaimsRequestError(ValueError):
    """The ``claims`` parameter is not the JSON object the spec describes."""


@dataclass(frozen=True)
class IdentityFacts:
    """What one verification route established about a person."""

    route: str  # passport_face | passport_chip | bank_card
    verified_at: datetime
    given_name: str | None = None
    family_name: str | None = None
    birthdate: date | None = None
    nationality: str | None = None  # ICAO 9303 three-letter code, as on the passport
    issuing_state: str | None = None
    expiry: date | None = None
    reviewed: bool = False
    bank_name: str | None = None


def parse_claims_request(text: str | None) -> dict[str, Any]:
    """The ``claims`` parameter (OpenID Connect Core 5.5), checked for shape."""
    if not text:
        return {}
    try:
        request = json.loads(text)
    except ValueError as error:
        raise ClaimsRequestError("the claims parameter is not JSON") from error
    if not isinstance(request, dict):
        raise ClaimsRequestError("the claims parameter must be a JSON object")
    for target in ("userinfo", "id_token"):
        part = request.get(target)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ClaimsRequestError(f"claims.{target} must be an object")
        wanted = part.get("verified_claims")
        for item in wanted if isinstance(wanted, list) else [wanted] if wanted else []:
            if not isinstance(item, dict) or not isinstance(item.get("claims"), dict):
                raise ClaimsRequestError("verified_claims needs a claims object")
            if not item["claims"]:
                raise ClaimsRequestError("verified_claims.claims must not be empty")
            if not isinstance(item.get("verification", {}), dict):
                raise ClaimsRequestError("verified_claims.verification must be an object")
    return request


def requested_claim_names(request: dict[str, Any]) -> frozenset[str]:
    """Every verified claim the request names (in userinfo or the ID token) that Qianbao
    knows: what the consent page lists."""
    names: set[str] = set()
    for target in ("userinfo", "id_token"):
        for item in _verified_requests(request, target):
            names |= {name for name in item["claims"] if name in VERIFIED_CLAIMS}
    return frozenset(names)


def _verified_requests(request: dict[str, Any], target: str) -> list[dict[str, Any]]:
    wanted = (request.get(target) or {}).get("verified_claims")
    if not wanted:
        return []
    return wanted if isinstance(wanted, list) else [wanted]


def available_record(facts: IdentityFacts, today: date) -> dict[str, Any] | None:
    """Everything Qianbao could tell of this route, before selection; None when the
    claims have stopped (an expired passport)."""
    if facts.expiry is not None and facts.expiry < today:
        return None
    verification: dict[str, Any] = {
        "trust_framework": TRUST_FRAMEWORK,
        "assurance_level": ASSURANCE_LEVELS[facts.route],
        "time": _timestamp(facts.verified_at),
        "evidence": [_evidence(facts)],
    }
    claims: dict[str, Any] = {"identity_verified": True}
    if facts.given_name is not None:
        claims["given_name"] = facts.given_name
    if facts.family_name is not None:
        claims["family_name"] = facts.family_name
    if facts.birthdate is not None:
        claims["birthdate"] = facts.birthdate.isoformat()
        claims["age_over_18"] = _age(facts.birthdate, today) >= ADULT_AGE
    if facts.nationality is not None:
        claims["nationalities"] = [facts.nationality]
    return {"verification": verification, "claims": claims}


def _evidence(facts: IdentityFacts) -> dict[str, Any]:
    if facts.route == "bank_card":
        return {
            "type": "electronic_record",
            "check_details": [{"check_method": "data"}],
            "time": _timestamp(facts.verified_at),
            "record": {
                "type": "bank_account",
                "source": {"name": facts.bank_name or "", "country_code": "CHN"},
            },
        }
    document_check = "vcrypt" if facts.route == "passport_chip" else "vpip"
    checks = [{"check_method": document_check}, {"check_method": "bvr"}]
    if facts.reviewed:  # a reviewer compared the face as well
        checks.append({"check_method": "pvr"})
    details: dict[str, Any] = {"type": "passport", "issuer": {"country_code": facts.issuing_state}}
    if facts.expiry is not None:
        details["date_of_expiry"] = facts.expiry.isoformat()
    return {
        "type": "document",
        "check_details": checks,
        "time": _timestamp(facts.verified_at),
        "document_details": details,
    }


def select(
    record: dict[str, Any] | None,
    request: dict[str, Any],
    target: str,
    consented: frozenset[str],
    now: datetime,
) -> Any | None:
    """The ``verified_claims`` value for ``target`` (userinfo or id_token), or None."""
    if record is None:
        return None
    chosen = []
    for item in _verified_requests(request, target):
        verification = _pick_verification(
            record["verification"], item.get("verification") or {}, now
        )
        if verification is None:
            continue
        wanted = {name: spec for name, spec in item["claims"].items() if name in consented}
        claims = {
            name: record["claims"][name]
            for name, spec in wanted.items()
            if name in record["claims"] and _meets(record["claims"][name], spec, now)
        }
        if claims:
            chosen.append({"verification": verification, "claims": claims})
    if not chosen:
        return None
    return chosen[0] if len(chosen) == 1 else chosen


_UNMET: Final = object()


def _pick_verification(
    available: dict[str, Any], requested: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    picked = _pick(available, requested, now)
    if picked is _UNMET:
        return None
    result: dict[str, Any] = dict(picked) if isinstance(picked, dict) else {}
    result["trust_framework"] = available["trust_framework"]  # always sent (required)
    return result


def _pick(available: Any, requested: Any, now: datetime) -> Any:
    """What of ``available`` the request asks for; _UNMET when a constraint fails."""
    if _is_leaf(requested):
        return available if _meets(available, requested, now) else _UNMET
    if isinstance(requested, list):
        if not isinstance(available, list):
            return _UNMET
        matched = []
        for entry in available:
            for wanted in requested:
                picked = _pick(entry, wanted, now)
                if picked is not _UNMET:
                    matched.append(picked)
                    break
        return matched if matched else _UNMET
    if not isinstance(available, dict):
        return _UNMET
    result = {}
    for name, wanted in requested.items():
        if name not in available:
            if _is_leaf(wanted) and not _constrains(wanted):
                continue  # asked for but not held: simply not returned
            return _UNMET
        picked = _pick(available[name], wanted, now)
        if picked is _UNMET:
            return _UNMET
        result[name] = picked
    return result


def _is_leaf(requested: Any) -> bool:
    return requested is None or (isinstance(requested, dict) and set(requested) <= _CONTROL_KEYS)


def _constrains(requested: Any) -> bool:
    return isinstance(requested, dict) and bool({"value", "values", "max_age"} & set(requested))


def _meets(value: Any, requested: Any, now: datetime) -> bool:
    if not isinstance(requested, dict):
        return True
    if "value" in requested and value != requested["value"]:
        return False
    if "values" in requested and value not in (requested["values"] or []):
        return False
    if "max_age" in requested:
        try:
            then = datetime.fromisoformat(str(value))
            limit = int(requested["max_age"])
        except (TypeError, ValueError):
            return False
        return (now - then).total_seconds() <= limit
    return True


def _timestamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _age(birthdate: date, today: date) -> int:
    before_birthday = (today.month, today.day) < (birthdate.month, birthdate.day)
    return today.year - birthdate.year - int(before_birthday)
