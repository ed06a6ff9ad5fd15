"""A passport chip must be signed by its issuing state: the Document Signer's and the
CSCA's countryName against the zone's issuing state (chip.signer_country)."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from qianbao.errors import InvalidInput
from qianbao.settings import Settings
from qianbao.verification import countries
from qianbao.verification.chip import ChipVerification, verify_chip
from qianbao.verification.trust import TrustStore
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import TODAY, PassportData, random_passport


def _passport(state: str) -> PassportData:
    return dataclasses.replace(random_passport(random.Random(5)), nationality=state)


def _verify(
    chip: vectors.Chip, cscas: list[vectors.Authority], exceptions: tuple[str, ...] = ()
) -> ChipVerification:
    store = TrustStore([authority.der for authority in cscas])
    return verify_chip(chip.files, store, today=TODAY, country_exceptions=exceptions)


def _refusal(
    chip: vectors.Chip, cscas: list[vectors.Authority], exceptions: tuple[str, ...] = ()
) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        _verify(chip, cscas, exceptions)
    return caught.value


def test_a_british_passport_signed_by_a_german_signer_is_refused() -> None:
    # Both CSCAs trusted, as after importing a master list: the chain verifies, the
    # country does not.
    german, british = vectors.csca("rsa", country="DE"), vectors.csca("rsa", country="GB")
    signer = vectors.document_signer("rsa", country="DE")
    chip = vectors.build_chip(_passport("GBR"), signer=signer, active_authentication=False)
    refusal = _refusal(chip, [british, german])
    assert refusal.code == "chip.signer_country"
    assert refusal.details == {"certificate": "document_signer"}
    assert "(GBR)" in refusal.localized_message()
    # The same passport signed by the British signer passes.
    genuine = vectors.build_chip(_passport("GBR"), active_authentication=False)
    assert "signer_country" in _verify(genuine, [british, german]).checks


def test_a_signer_of_the_right_country_under_another_countrys_csca_is_refused() -> None:
    german = vectors.csca("rsa", country="DE")
    key = vectors.rsa_key(2048, "ds-gb-under-de")
    signer = vectors.issue(german, key, "DS GB under DE", country="GB")
    chip = vectors.build_chip(_passport("GBR"), signer=signer, active_authentication=False)
    refusal = _refusal(chip, [german, vectors.csca("rsa", country="GB")])
    assert refusal.code == "chip.signer_country"
    assert refusal.details == {"certificate": "country_signer"}


def _settings(tmp_path: Path, exceptions: str) -> Settings:
    return Settings(
        var_dir=tmp_path, secret_key="test-secret", chip_signer_country_exceptions=exceptions
    )


def test_a_signer_certificate_without_a_country_is_refused() -> None:
    british = vectors.csca("rsa", country="GB")
    key = vectors.rsa_key(2048, "ds-no-country")
    issuer_key_id = x509.SubjectKeyIdentifier.from_public_key(british.key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DS nowhere")]))
        .issuer_name(british.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2036, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id), False
        )
        .sign(british.key, hashes.SHA256())
    )
    signer = vectors.Authority(key, certificate)
    chip = vectors.build_chip(_passport("GBR"), signer=signer, active_authentication=False)
    refusal = _refusal(chip, [british])
    assert refusal.code == "chip.signer_country"
    assert refusal.details == {"certificate": "document_signer"}


def test_an_exception_from_the_settings_lets_the_pair_pass(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "gbr:de, UNK:XK")
    assert settings.chip_signer_country_exceptions == ["GBR:DE", "UNK:XK"]
    german = vectors.csca("rsa", country="DE")
    signer = vectors.document_signer("rsa", country="DE")
    chip = vectors.build_chip(_passport("GBR"), signer=signer, active_authentication=False)
    exceptions = tuple(settings.chip_signer_country_exceptions)
    result = _verify(chip, [german], exceptions)
    assert result.passive.document_signer_country == "DE"
    assert "signer_country" in result.checks
    # An exception for one state allows nothing for another.
    french = vectors.build_chip(
        _passport("FRA"), signer=signer, country="DE", active_authentication=False
    )
    assert _refusal(french, [german], exceptions).code == "chip.signer_country"


@pytest.mark.parametrize("value", ["GBR", "GBR:DEU", "GBR-DE", "1:DE"])
def test_a_malformed_exception_is_refused_at_startup(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        _settings(tmp_path, value)


@pytest.mark.parametrize(
    ("state", "country"),
    [("D", "DE"), ("GBN", "GB"), ("GBD", "GB"), ("RKS", "XK"), ("EUE", "EU"), ("UNO", "UN")],
)
def test_icao_codes_that_are_not_iso_pass_under_their_states_csca(state: str, country: str) -> None:
    chip = vectors.build_chip(_passport(state), country=country, active_authentication=False)
    assert chip.csca is not None and chip.csca.cert.subject.rfc4514_string().endswith(
        f"C={country}"
    )
    assert "signer_country" in _verify(chip, [chip.csca]).checks
    # And under a neighbour's CSCA they do not.
    other = vectors.build_chip(_passport(state), country="FR", active_authentication=False)
    assert other.csca is not None
    assert _refusal(other, [other.csca]).code == "chip.signer_country"


def test_a_code_that_names_no_state_passes_only_as_an_exception() -> None:
    # XXA (stateless person) is a nationality, not a state that signs: refused unless
    # the operator lists who signs such documents.
    chip = vectors.build_chip(_passport("XXA"), country="DE", active_authentication=False)
    assert chip.csca is not None
    assert _refusal(chip, [chip.csca]).code == "chip.signer_country"
    assert _verify(chip, [chip.csca], ("XXA:DE",)).passive.country_signer_country == "DE"


def test_icao_codes_map_to_certificate_countries() -> None:
    assert countries.certificate_country("DEU") == "DE"
    assert countries.certificate_country("D") == "DE"
    assert countries.certificate_country("D<<") == "DE"
    assert countries.certificate_country("GBS") == "GB"
    assert countries.certificate_country("CHN") == "CN"
    assert countries.certificate_country("XXA") is None
    assert countries.certificate_country("UTO") is None
    assert countries.signer_countries("GBR", ["GBR:DE", "FRA:BE"]) == {"GB", "DE"}
    assert countries.signer_countries("XPO") == frozenset()
