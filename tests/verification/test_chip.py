"""Passport chip: genuine chips pass for each algorithm, each forgery fails with its code."""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
from datetime import timedelta
from typing import Any

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from qianbao.errors import InvalidInput
from qianbao.verification.chip import (
    ChipFiles,
    ChipVerification,
    compare_with_printed,
    parse_dg1,
    parse_dg2,
    verify_chip,
)
from qianbao.verification.mrz import parse_td3
from qianbao.verification.trust import (
    HashName,
    TrustStore,
    fingerprint,
    parse_certificates,
    parse_crl,
    parse_master_list,
)
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import TODAY, PassportData, random_passport


def _passport(seed: int = 1) -> PassportData:
    return random_passport(random.Random(seed))


def _country(seed: int = 1) -> str:
    """The certificates' countryName for the issuing state of ``_passport(seed)``."""
    return vectors.ISSUING_COUNTRIES[_passport(seed).nationality]


def _verify(chip: vectors.Chip, **kwargs: Any) -> ChipVerification:
    return verify_chip(chip.files, TrustStore(chip.cscas, chip.crls), today=TODAY, **kwargs)


def _code(chip: vectors.Chip, **kwargs: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        _verify(chip, **kwargs)
    return caught.value.code


def _with_group(chip: vectors.Chip, number: int, content: bytes | None) -> vectors.Chip:
    groups = dict(chip.files.dgs)
    if content is None:
        del groups[number]
    else:
        groups[number] = content
    return dataclasses.replace(chip, files=ChipFiles(chip.files.sod, groups))


@pytest.mark.parametrize("algorithm", vectors.ALGORITHMS)
def test_genuine_chip_passes_with_active_authentication(algorithm: vectors.Algorithm) -> None:
    passport = _passport()
    chip = vectors.build_chip(passport, algorithm=algorithm)
    challenge = secrets.token_bytes(8)
    assert chip.aa_private_key is not None
    answer = vectors.sign_aa(chip.aa_private_key, challenge)
    result = verify_chip(
        chip.files, TrustStore(chip.cscas), today=TODAY, aa_challenge=challenge, aa_signature=answer
    )
    assert (result.mrz.line1, result.mrz.line2) == passport.lines()
    assert result.face.size == vectors.astronaut_face().size
    assert result.active_authentication == "passed"
    assert result.passive.data_groups == (1, 2, 14, 15)
    country = _country()
    assert result.passive.document_signer == (
        f"CN=DS {algorithm},O=Passport Office {country},C={country}"
    )
    assert result.passive.document_signer_country == country
    assert result.passive.country_signer_country == country
    assert "signer_country" in result.checks
    assert "active_authentication" in result.checks
    expected = {
        "rsa": "RSA PKCS#1 v1.5 with SHA-256",
        "rsa-pss": "RSA-PSS with SHA-256, MGF1 SHA-256, salt 32",
        "ecdsa": "ECDSA with SHA-256 (DER)",
        "ecdsa-plain": "ECDSA with SHA-256 (plain r||s)",
        "brainpool": "ECDSA with SHA-256 (DER)",
        "brainpool-explicit": "ECDSA with SHA-256 (DER)",
    }[algorithm]
    assert result.passive.signature_algorithm == expected


def test_explicit_curve_certificate_is_really_explicit() -> None:
    # The vector must be what the test above claims: the signer's key carries the curve's
    # parameters themselves (ECParameters), not a named-curve OID, as many passports do.
    # Read from the DER, not from whether one release of a library can load it.
    signer = vectors.document_signer("brainpool-explicit")
    certificate = asn1_x509.Certificate.load(signer.der)
    parameters = certificate.public_key["algorithm"]["parameters"]
    assert parameters.name == "specified"
    assert parameters.chosen["field_id"]["field_type"].native == "prime_field"


@pytest.mark.parametrize("hash_name", ["sha1", "sha224", "sha256", "sha384", "sha512"])
def test_every_sha_hash(hash_name: HashName) -> None:
    chip = vectors.build_chip(_passport(), hash_name=hash_name, active_authentication=False)
    result = _verify(chip)
    assert result.passive.digest_algorithm == hash_name
    assert result.active_authentication == "not_supported"


def test_pss_parameters_are_read_from_the_structure() -> None:
    unusual = vectors.PssParameters(hash="sha384", mgf_hash="sha1", salt_length=17)
    chip = vectors.build_chip(
        _passport(), algorithm="rsa-pss", hash_name="sha384", pss=unusual,
        active_authentication=False,
    )  # fmt: skip
    result = _verify(chip)
    assert result.passive.signature_algorithm == "RSA-PSS with SHA-384, MGF1 SHA-1, salt 17"


def test_pss_with_other_parameters_than_signed_fails() -> None:
    # Signed with salt 17, but the structure states salt 32: the verifier must use 32.
    chip = vectors.build_chip(_passport(), algorithm="rsa-pss", active_authentication=False)
    sod = _replace_signer_field(chip.files.sod, salt_length=17)
    assert _code(dataclasses.replace(chip, files=ChipFiles(sod, chip.files.dgs))) == (
        "chip.sod_signature"
    )


def _replace_signer_field(sod: bytes, *, salt_length: int) -> bytes:
    info = cms.ContentInfo.load(sod[4:])  # 77 82 xx xx
    algorithm = info["content"]["signer_infos"][0]["signature_algorithm"]
    algorithm["parameters"]["salt_length"] = salt_length
    return vectors.tlv(0x77, info.dump(force=True))


def test_jpeg2000_face_decodes() -> None:
    chip = vectors.build_chip(_passport(), face_format="JPEG2000", active_authentication=False)
    result = _verify(chip)
    assert result.face_format == "JPEG2000"
    assert parse_dg2(chip.files.dgs[2]).size == vectors.astronaut_face().size


def test_dg1_is_parsed_with_check_digits() -> None:
    passport = _passport(3)
    mrz = parse_dg1(vectors.dg1(passport), today=TODAY)
    assert mrz.document_number == passport.document_number
    line1, line2 = passport.lines()
    broken = line2[:9] + str((int(line2[9]) + 1) % 10) + line2[10:]
    data = vectors.tlv(0x61, vectors.tlv(0x5F1F, (line1 + broken).encode()))
    with pytest.raises(InvalidInput) as caught:
        parse_dg1(data, today=TODAY)
    assert caught.value.code == "mrz.check_digit"


# --- forgeries ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine() -> vectors.Chip:
    return vectors.build_chip(_passport(), active_authentication=True)


def test_tampered_dg1_fails(genuine: vectors.Chip) -> None:
    other = dataclasses.replace(_passport(), document_number="X12345678")
    assert _code(_with_group(genuine, 1, vectors.dg1(other))) == "chip.dg_hash"


def test_dg2_from_another_passport_fails(genuine: vectors.Chip) -> None:
    other = vectors.build_chip(_passport(2), face=vectors.astronaut_face().rotate(5))
    assert _code(_with_group(genuine, 2, other.files.dgs[2])) == "chip.dg_hash"


def test_data_group_not_listed_in_sod_fails(genuine: vectors.Chip) -> None:
    assert _code(_with_group(genuine, 11, vectors.tlv(0x6B, b"\x5f\x0e\x01A"))) == "chip.dg_hash"


def test_unknown_csca_fails() -> None:
    rogue = vectors.csca("rsa", "-rogue")
    signer = vectors.document_signer("rsa", issuer=rogue, label="-rogue")
    chip = vectors.build_chip(_passport(), signer=signer)
    assert _code(chip) == "chip.unknown_csca"


def test_ds_claiming_a_trusted_csca_but_signed_by_another_key_fails() -> None:
    real = vectors.csca("rsa", country=_country())
    impostor = vectors.Authority(vectors.csca("rsa", "-impostor").key, real.cert)
    signer = vectors.issue(impostor, vectors.rsa_key(2048, "impostor-ds"), "DS impostor")
    assert signer.cert.issuer == real.cert.subject
    chip = vectors.build_chip(_passport(), signer=signer)
    assert _code(chip) == "chip.unknown_csca"


def test_expired_ds_fails() -> None:
    signer = vectors.document_signer(
        "rsa", validity=vectors.EXPIRED_DS_VALIDITY, label="-old", country=_country()
    )
    assert _code(vectors.build_chip(_passport(), signer=signer)) == "chip.ds_expired"


def test_revoked_ds_fails(genuine: vectors.Chip) -> None:
    assert genuine.signer is not None and genuine.csca is not None
    issuer = genuine.csca
    revoked = dataclasses.replace(
        genuine, crls=[vectors.crl(issuer, [genuine.signer.cert.serial_number])]
    )
    assert _code(revoked) == "chip.ds_revoked"
    other_serial = dataclasses.replace(genuine, crls=[vectors.crl(issuer, [12345])])
    assert _verify(other_serial).passive.data_groups == (1, 2, 14, 15)


OVERDUE_CRL_DAY = TODAY - timedelta(days=100)  # chip_vectors.crl: nextUpdate 80 days on


def test_an_overdue_crl_is_flagged_and_by_default_accepted_with_a_warning(
    genuine: vectors.Chip, caplog: pytest.LogCaptureFixture
) -> None:
    assert genuine.signer is not None and genuine.csca is not None
    overdue = vectors.crl(genuine.csca, [], day=OVERDUE_CRL_DAY)
    chip = dataclasses.replace(genuine, crls=[overdue])
    with caplog.at_level(logging.WARNING, logger="qianbao.verification.chip"):
        passive = _verify(chip).passive
    due = TODAY - timedelta(days=20)
    assert passive.crl_overdue_since == due
    assert "overdue CRL" in caplog.text and due.isoformat() in caplog.text
    assert _code(chip, stale_crl="refuse") == "chip.crl_overdue"


def test_an_overdue_crl_still_revokes_what_it_lists(genuine: vectors.Chip) -> None:
    assert genuine.signer is not None and genuine.csca is not None
    serial = genuine.signer.cert.serial_number
    chip = dataclasses.replace(
        genuine, crls=[vectors.crl(genuine.csca, [serial], day=OVERDUE_CRL_DAY)]
    )
    assert _code(chip) == "chip.ds_revoked"


def test_a_current_crl_supersedes_an_overdue_one(genuine: vectors.Chip) -> None:
    assert genuine.csca is not None
    overdue = vectors.crl(genuine.csca, [], day=OVERDUE_CRL_DAY)
    current = vectors.crl(genuine.csca, [])
    chip = dataclasses.replace(genuine, crls=[overdue, current])
    assert _verify(chip, stale_crl="refuse").passive.crl_overdue_since is None
    assert _verify(genuine, stale_crl="refuse").passive.crl_overdue_since is None  # no CRL


def test_hashes_made_with_another_algorithm_than_stated_fail() -> None:
    chip = vectors.build_chip(_passport(), hash_name="sha256", lds_used="sha1")
    assert _code(chip) == "chip.algorithm_mismatch"


def test_unsupported_hash_fails() -> None:
    chip = vectors.build_chip(_passport(), active_authentication=False)
    info = cms.ContentInfo.load(chip.files.sod[4:])
    info["content"]["signer_infos"][0]["digest_algorithm"]["algorithm"] = "md5"
    forged = dataclasses.replace(
        chip, files=ChipFiles(vectors.tlv(0x77, info.dump(force=True)), chip.files.dgs)
    )
    assert _code(forged) == "chip.algorithm_mismatch"


def test_changed_sod_content_fails_signature(genuine: vectors.Chip) -> None:
    sod = bytearray(genuine.files.sod)
    sod[len(sod) - 10] ^= 0x01  # inside the signature value, the last field
    forged = dataclasses.replace(genuine, files=ChipFiles(bytes(sod), genuine.files.dgs))
    assert _code(forged) == "chip.sod_signature"
    # An LDS security object re-written with the forger's hashes but the old signature.
    fake_lds = vectors.lds_security_object({**genuine.files.dgs, 1: vectors.dg1(_passport(9))})
    info = cms.ContentInfo.load(genuine.files.sod[4:])
    info["content"]["encap_content_info"]["content"] = fake_lds
    rewritten = vectors.tlv(0x77, info.dump(force=True))
    assert _code(dataclasses.replace(genuine, files=ChipFiles(rewritten, genuine.files.dgs))) == (
        "chip.sod_signature"
    )


@pytest.mark.parametrize("algorithm", ["rsa", "ecdsa", "brainpool"])
def test_cloned_chip_fails_active_authentication(algorithm: vectors.Algorithm) -> None:
    chip = vectors.build_chip(_passport(), algorithm=algorithm)
    challenge = secrets.token_bytes(8)
    # The clone has every file but not the chip's key: it answers with a key of its own.
    clone_key = vectors.aa_key(algorithm)
    assert (
        _code(chip, aa_challenge=challenge, aa_signature=vectors.sign_aa(clone_key, challenge))
        == "chip.active_auth"
    )
    # Nor can it replay an answer the real chip gave to another challenge.
    assert chip.aa_private_key is not None
    old = vectors.sign_aa(chip.aa_private_key, secrets.token_bytes(8))
    assert _code(chip, aa_challenge=challenge, aa_signature=old) == "chip.active_auth"
    assert _code(chip, aa_challenge=challenge, aa_signature=None) == "chip.active_auth"


def test_rsa_active_authentication_with_sha256_trailer(genuine: vectors.Chip) -> None:
    challenge = secrets.token_bytes(8)
    assert genuine.aa_private_key is not None
    answer = vectors.sign_aa(genuine.aa_private_key, challenge, hash_name="sha256")
    result = _verify(genuine, aa_challenge=challenge, aa_signature=answer)
    assert result.active_authentication_algorithm == "RSA ISO/IEC 9796-2 scheme 1 with SHA-256"


def test_without_challenge_active_authentication_is_reported_not_run(
    genuine: vectors.Chip,
) -> None:
    assert _verify(genuine).active_authentication == "not_run"


@pytest.mark.parametrize("number", [0, 1, 2])
def test_truncated_files_fail(genuine: vectors.Chip, number: int) -> None:
    files = genuine.files
    if number == 0:
        cut = ChipFiles(files.sod[: len(files.sod) // 2], files.dgs)
    else:
        cut = ChipFiles(files.sod, {**files.dgs, number: files.dgs[number][:-7]})
    assert _code(dataclasses.replace(genuine, files=cut)) == "chip.truncated"


@pytest.mark.parametrize("number", [0, 1, 2, 15])
def test_garbage_files_fail(genuine: vectors.Chip, number: int) -> None:
    noise = random.Random(number).randbytes(300)
    files = genuine.files
    if number == 0:
        bad = ChipFiles(noise, files.dgs)
    else:
        bad = ChipFiles(files.sod, {**files.dgs, number: noise})
    assert _code(dataclasses.replace(genuine, files=bad)) == "chip.garbage"


def test_well_formed_sod_wrapper_with_garbage_inside_fails(genuine: vectors.Chip) -> None:
    bad = ChipFiles(vectors.tlv(0x77, b"\x30\x03\x02\x01\x00"), genuine.files.dgs)
    assert _code(dataclasses.replace(genuine, files=bad)) == "chip.garbage"


def test_a_signer_certificate_with_an_impossible_version_is_garbage(
    genuine: vectors.Chip,
) -> None:
    version_3 = bytes.fromhex("a003020102")  # [0] INTEGER 2: the DS certificate's version
    assert version_3 in genuine.files.sod
    broken = genuine.files.sod.replace(version_3, bytes.fromhex("a003020107"), 1)
    bad = ChipFiles(broken, genuine.files.dgs)
    assert _code(dataclasses.replace(genuine, files=bad)) == "chip.garbage"


@pytest.mark.parametrize("number", [1, 2])
def test_missing_data_group_fails(genuine: vectors.Chip, number: int) -> None:
    assert _code(_with_group(genuine, number, None)) == "chip.missing_dg"


def test_printed_mrz_must_match(genuine: vectors.Chip) -> None:
    passport = _passport()
    printed = parse_td3(*passport.lines(), today=TODAY)
    assert "printed_mrz" in _verify(genuine, printed_mrz=printed).checks
    other = dataclasses.replace(passport, birth_date=passport.birth_date.replace(day=1))
    if other.birth_date == passport.birth_date:
        other = dataclasses.replace(passport, birth_date=passport.birth_date.replace(day=2))
    wrong = parse_td3(*other.lines(), today=TODAY)
    with pytest.raises(InvalidInput) as caught:
        compare_with_printed(parse_dg1(genuine.files.dgs[1], today=TODAY), wrong)
    assert caught.value.code == "chip.mrz_mismatch"
    assert caught.value.details == {"fields": ["birth_date"]}
    assert _code(genuine, printed_mrz=wrong) == "chip.mrz_mismatch"


def test_genuine_chip_helper_for_flow_tests() -> None:
    files, cscas, key = vectors.genuine_chip(
        _passport(), vectors.astronaut_face(), algorithm="ecdsa"
    )
    challenge = secrets.token_bytes(8)
    result = verify_chip(
        files, TrustStore(cscas), today=TODAY, aa_challenge=challenge,
        aa_signature=vectors.sign_aa(key, challenge),
    )  # fmt: skip
    assert result.active_authentication == "passed"
    assert isinstance(key, ec.EllipticCurvePrivateKey)


# --- the trust store ------------------------------------------------------------------


def test_certificates_parse_from_pem_and_der() -> None:
    first, second = vectors.csca("rsa"), vectors.csca("ec")
    pem = b"".join(a.cert.public_bytes(serialization.Encoding.PEM) for a in (first, second))
    assert parse_certificates(pem) == [first.der, second.der]
    assert parse_certificates(first.der) == [first.der]
    assert parse_certificates(first.der + second.der) == [first.der, second.der]
    with pytest.raises(InvalidInput) as caught:
        parse_certificates(b"not a certificate at all")
    assert caught.value.code == "trust.certificate"


def test_crl_parses_from_pem_and_der_and_must_be_signed_by_a_csca() -> None:
    issuer = vectors.csca("ec")
    der = vectors.crl(issuer, [7])
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    assert parse_crl(pem) == der
    assert parse_crl(der) == der
    with pytest.raises(InvalidInput) as caught:
        parse_crl(b"garbage")
    assert caught.value.code == "trust.crl"
    with pytest.raises(InvalidInput) as caught:
        TrustStore([vectors.csca("rsa").der], [der])
    assert caught.value.code == "trust.crl_unverified"


def test_trust_store_lookup_by_subject_and_key_identifier() -> None:
    store = TrustStore([vectors.csca("rsa").der, vectors.csca("ec").der])
    subject = vectors.csca("ec").cert.subject
    found = store.by_subject(subject)
    assert [c.der for c in found] == [vectors.csca("ec").der]
    assert found[0].key_identifier is not None
    assert store.by_key_identifier(found[0].key_identifier) == found


def test_master_list_import_needs_a_trusted_signer() -> None:
    listed = [vectors.csca("rsa"), vectors.csca("ec")]
    data = vectors.master_list(listed, vectors.csca("rsa"))
    # Anchored on a CSCA already trusted: accepted. A SET OF comes back in DER order,
    # not the order it was written in.
    anchored = parse_master_list(data, today=TODAY, trusted_cscas=[listed[0].der])
    assert sorted(anchored) == sorted(a.der for a in listed)
    # Signed under a CSCA that only the list itself vouches for: refused, as is a list
    # anchored on another CSCA than the one that issued its signer.
    for trusted in ([], [listed[1].der]):
        with pytest.raises(InvalidInput) as caught:
            parse_master_list(data, today=TODAY, trusted_cscas=trusted)
        assert caught.value.code == "trust.master_list_signer"


def test_master_list_anchored_by_a_configured_fingerprint() -> None:
    listed = [vectors.csca("rsa", country="DE"), vectors.csca("ec", country="FR")]
    signer = vectors.master_list_signer(listed[0])
    data = vectors.master_list(listed, listed[0], signer=signer)
    # The fingerprint of the CSCA in the list that issued the signer, or of the signer.
    for anchor in (fingerprint(listed[0].der), fingerprint(signer.der)):
        found = parse_master_list(data, today=TODAY, trusted_cscas=[], anchor_fingerprints={anchor})
        assert len(found) == 2
    # The fingerprint of another CSCA of the list anchors nothing.
    with pytest.raises(InvalidInput) as caught:
        parse_master_list(
            data, today=TODAY, trusted_cscas=[], anchor_fingerprints={fingerprint(listed[1].der)}
        )
    assert caught.value.code == "trust.master_list_signer"


def test_master_list_signed_by_a_csca_outside_it_is_refused() -> None:
    data = vectors.master_list([vectors.csca("ec")], vectors.csca("rsa", "-outsider"))
    with pytest.raises(InvalidInput) as caught:
        parse_master_list(data, today=TODAY, trusted_cscas=[vectors.csca("ec").der])
    assert caught.value.code == "trust.master_list_signer"


def test_tampered_master_list_is_refused() -> None:
    data = vectors.master_list([vectors.csca("rsa")], vectors.csca("rsa"), tamper=True)
    trusted = [vectors.csca("rsa").der]
    with pytest.raises(InvalidInput) as caught:
        parse_master_list(data, today=TODAY, trusted_cscas=trusted)
    assert caught.value.code == "trust.master_list_signature"
    with pytest.raises(InvalidInput) as caught:
        parse_master_list(b"\x30\x03\x02\x01\x00", today=TODAY, trusted_cscas=trusted)
    assert caught.value.code == "trust.master_list"
