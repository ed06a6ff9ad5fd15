"""Submitting a chip read to Qianbao's API, exactly as the phone app does it.

1. ``POST /api/v1/verification/passport-chip``: start (or resume) "Passport chip &
   face"; the case carries ``aa_challenge``.
2. Read the chip. With DG15, the chip signs ``aa_challenge`` (active authentication).
   Without DG15 but with DG14, ask ``/chip-authentication`` for a challenge and let the
   chip answer it in the same session.
3. ``POST /passport-chip/{id}/chip`` with the files and the chip's answer. The server
   checks everything (passive authentication, the answer); the case moves on to
   "confirm" and the person finishes on the phone or the web (face check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from qianbao.chipreader.apdu import ReaderError, Transport
from qianbao.chipreader.bac import MrzKey
from qianbao.chipreader.passport import Passport, PassportRead

API: Final = "/api/v1/verification"


class ServerRefused(Exception):
    """The server answered with an error: its code and its localized message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Submitted:
    case: dict[str, Any]
    proof: str  # "active_authentication" | "chip_authentication" | "none"
    groups: tuple[int, ...]


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    try:
        error = response.json()
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    raise ServerRefused(
        response.status_code,
        str(error.get("code", "http.error")),
        str(error.get("message", response.reason_phrase)),
    )


def read_and_submit(
    http: httpx.Client,
    transport: Transport,
    key: MrzKey,
    progress: Callable[[str], None] = lambda _line: None,
) -> Submitted:
    """The whole flow with the chip on ``transport`` and the API behind ``http`` (its
    base URL and the person's bearer token already set)."""
    case = _json(http.post(f"{API}/passport-chip"))
    progress(f"case {case['id']}: {case['status']}")
    passport = Passport.open(transport, key)
    progress(f"chip opened ({passport.access})")
    read = passport.read_all()
    progress("read EF.COM, EF.SOD, " + ", ".join(f"DG{n}" for n in sorted(read.groups)))
    if 1 not in read.groups or 2 not in read.groups:
        raise ReaderError("The chip has no DG1 or DG2: the server needs both.")
    form: dict[str, str] = {}
    proof = "none"
    if 15 in read.groups and case.get("aa_challenge"):
        form["aa_signature"] = passport.active_authentication(
            bytes.fromhex(case["aa_challenge"])
        ).hex()
        proof = "active_authentication"
    elif 14 in read.groups:
        form["ca_response"] = _chip_authentication(http, passport, case["id"], read).hex()
        proof = "chip_authentication"
    progress(f"chip answered ({proof})")
    files = {"sod": ("EF.SOD", read.sod)} | {
        f"dg{n}": (f"EF.DG{n}", content) for n, content in read.groups.items()
    }
    submitted = _json(http.post(f"{API}/passport-chip/{case['id']}/chip", files=files, data=form))
    return Submitted(submitted, proof, tuple(sorted(read.groups)))


def _chip_authentication(
    http: httpx.Client, passport: Passport, case_id: str, read: PassportRead
) -> bytes:
    files = {"dg14": ("EF.DG14", read.groups[14]), "dg1": ("EF.DG1", read.groups[1])}
    challenge = _json(http.post(f"{API}/passport-chip/{case_id}/chip-authentication", files=files))
    return passport.chip_authentication(
        challenge["protocol"],
        challenge["key_id"],
        bytes.fromhex(challenge["ephemeral_public_key"]),
        bytes.fromhex(challenge["command"]),
    )
