"""The trust store in the database: CSCA certificates and CRLs that an operator imported
(``qianbao trust import``), from which each chip check builds its ``TrustStore``.

Qianbao ships no certificate: an operator imports what they can verify, such as the
ICAO PKD's CSCA master lists or a country's published CSCA certificates and CRLs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from cryptography import x509
from sqlalchemy import select

from qianbao.db import Tx
from qianbao.errors import InvalidInput, QianbaoError
from qianbao.i18n import N_
from qianbao.verification import trust
from qianbao.verification.models import TrustAnchor


@dataclass(frozen=True)
class Imported:
    cscas: int
    crls: int
    already_known: int


@dataclass(frozen=True)
class AnchorRow:
    kind: str
    subject: str
    country: str | None
    not_after: str
    source: str


def import_file(tx: Tx, data: bytes, source: str, *, today: date) -> Imported:
    """A master list, certificates (PEM, DER, PKCS#7) or a CRL, whichever ``data`` is.
    A master list's signature must verify; a CRL must be signed by a stored CSCA."""
    cscas, crls = _read(tx, data, today)
    added = {"csca": 0, "crl": 0}
    known = 0
    for kind, der in [("csca", der) for der in cscas] + [("crl", der) for der in crls]:
        digest = hashlib.sha256(der).hexdigest()
        if tx.session.scalar(select(TrustAnchor.id).where(TrustAnchor.sha256 == digest)):
            known += 1
            continue
        subject, country, not_after = _describe(kind, der)
        tx.session.add(
            TrustAnchor(
                kind=kind,
                sha256=digest,
                der=der,
                subject=subject[:512],
                country=country,
                not_after=not_after,
                source=source[:256],
                imported_at=tx.now(),
            )
        )
        added[kind] += 1
    return Imported(added["csca"], added["crl"], known)


def load(tx: Tx) -> trust.TrustStore:
    rows = tx.session.execute(select(TrustAnchor.kind, TrustAnchor.der)).all()
    return trust.TrustStore(
        [row.der for row in rows if row.kind == "csca"],
        [row.der for row in rows if row.kind == "crl"],
    )


def anchors(tx: Tx) -> list[AnchorRow]:
    rows = tx.session.scalars(
        select(TrustAnchor).order_by(TrustAnchor.country, TrustAnchor.kind, TrustAnchor.subject)
    )
    return [
        AnchorRow(
            row.kind,
            row.subject,
            row.country,
            row.not_after.date().isoformat() if row.not_after else "",
            row.source,
        )
        for row in rows
    ]


def _read(tx: Tx, data: bytes, today: date) -> tuple[list[bytes], list[bytes]]:
    """Try each kind of file in turn; the first that parses decides."""
    stored = [
        row.der
        for row in tx.session.execute(select(TrustAnchor.der).where(TrustAnchor.kind == "csca"))
    ]
    attempts: tuple[Callable[[], tuple[list[bytes], list[bytes]]], ...] = (
        lambda: (trust.parse_master_list(data, today=today), []),
        lambda: (trust.parse_certificates(data), []),
        lambda: ([], [_checked_crl(data, stored)]),
    )
    first: QianbaoError | None = None
    for attempt in attempts:
        try:
            return attempt()
        except QianbaoError as error:
            # A master list that parses but fails its signature is an answer, not a miss.
            if error.code.startswith("trust.master_list_"):
                raise
            first = first or error
    raise InvalidInput(
        "trust.unknown_file",
        N_("This file is neither a CSCA master list, nor certificates, nor a revocation list."),
    ) from first


def _checked_crl(data: bytes, stored_cscas: list[bytes]) -> bytes:
    crl = trust.parse_crl(data)
    trust.TrustStore(stored_cscas, [crl])  # refuses a CRL no stored CSCA signed
    return crl


def _describe(kind: str, der: bytes) -> tuple[str, str | None, datetime | None]:
    until: datetime | None
    if kind == "csca":
        certificate = x509.load_der_x509_certificate(der)
        name, until = certificate.subject, certificate.not_valid_after_utc
    else:
        crl = x509.load_der_x509_crl(der)
        name, until = crl.issuer, crl.next_update_utc
    countries = name.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    country = str(countries[0].value) if countries else None
    return name.rfc4514_string(), country, until
