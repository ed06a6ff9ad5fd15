"""The trust store in the database: CSCA certificates and CRLs that an operator imported
(``qianbao trust import``, ``import-master-list``, ``import-crl``), from which each chip
check builds its ``TrustStore``.

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
    A master list's signature must verify and its signer chain to a trusted CSCA (or a
    configured anchor); a CRL must be signed by a stored CSCA."""
    cscas, crls = _read(tx, data, today)
    return _store(tx, cscas, crls, source)


def import_master_list(tx: Tx, data: bytes, source: str, *, today: date) -> Imported:
    """An ICAO CSCA master list, and nothing else: its signature verified and its signer
    chained to a CSCA of the store or to ``chip_master_list_anchors`` before any of its
    certificates is stored (``trust.master_list*`` otherwise, nothing stored)."""
    return _store(tx, _master_list(tx, data, today), [], source)


def import_crl(tx: Tx, data: bytes, source: str) -> Imported:
    """An X.509 CRL (PEM or DER) signed by a CSCA of the store (``trust.crl`` when it is
    none, ``trust.crl_unverified`` when no stored CSCA signed it; nothing stored)."""
    return _store(tx, [], [_checked_crl(data, _stored_cscas(tx))], source)


def _store(tx: Tx, cscas: list[bytes], crls: list[bytes], source: str) -> Imported:
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
    tx.session.flush()
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


def _stored_cscas(tx: Tx) -> list[bytes]:
    return list(tx.session.scalars(select(TrustAnchor.der).where(TrustAnchor.kind == "csca")))


def _master_list(tx: Tx, data: bytes, today: date) -> list[bytes]:
    return trust.parse_master_list(
        data,
        today=today,
        trusted_cscas=_stored_cscas(tx),
        anchor_fingerprints=frozenset(tx.settings.chip_master_list_anchors),
    )


def _read(tx: Tx, data: bytes, today: date) -> tuple[list[bytes], list[bytes]]:
    """Try each kind of file in turn; the first that parses decides."""
    attempts: tuple[Callable[[], tuple[list[bytes], list[bytes]]], ...] = (
        lambda: (_master_list(tx, data, today), []),
        lambda: (trust.parse_certificates(data), []),
        lambda: ([], [_checked_crl(data, _stored_cscas(tx))]),
    )
    first: QianbaoError | None = None
    for attempt in attempts:
        try:
            return attempt()
        except QianbaoError as error:
            # A master list or CRL that parses but does not verify is an answer, not a miss.
            if error.code.startswith("trust.master_list_") or error.code == (
                "trust.crl_unverified"
            ):
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
