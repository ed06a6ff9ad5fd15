"""The heavy work of "Verify face", kept apart from the database.

Reading a photo page (image checks, MRZ OCR, portrait, face embedding) and checking a
selfie sequence (liveness, then face comparison) take from a few hundred milliseconds
to a few seconds of CPU. They run here, outside any transaction, so no database lock is
held meanwhile; the service then records the outcome in one short transaction.

Images are stored as they were decoded and turned upright, re-encoded as JPEG: that
drops the upload's EXIF metadata (a phone's GPS position, its serial number), which
Qianbao has no reason to keep.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.settings import Settings
from qianbao.verification import chip, chip_authentication, face, images, liveness, ocr
from qianbao.verification.mrz import PassportMrz, parse_td3
from qianbao.verification.trust import TrustStore

STORED_JPEG_QUALITY: Final = 88
# Selfie frames are stored at most this wide: enough for a reviewer to compare faces.
STORED_FRAME_WIDTH: Final = 640

FaceOutcome = Literal["match", "review", "no_match", "not_live"]


@dataclass(frozen=True, repr=False)
class PageReading:
    mrz: PassportMrz
    page_jpeg: bytes | None  # None when the data came from the chip
    portrait_jpeg: bytes
    portrait_embedding: bytes
    checks: tuple[str, ...] = ()  # what was verified (the chip's passive authentication...)


@dataclass(frozen=True, repr=False)
class FaceAssessment:
    outcome: FaceOutcome
    reason: str | None  # the error code of a failure, None for a match
    message: str | None  # its gettext msgid
    params: dict[str, Any]
    distance: float | None
    report: str  # JSON: the liveness measurements, for the reviewer
    frames_jpeg: tuple[bytes, ...]


def read_photo_page(data: bytes, settings: Settings, today: date) -> PageReading:
    """Everything Qianbao needs from a photo of a passport's data page, or the reason it
    cannot be used (``InvalidInput``: image.*, mrz.*, passport.no_portrait, face.*)."""
    image = _decode_page(data, settings)
    mrz = _read_zone(image, settings, today)
    portrait = face.cut_portrait(image)
    embedding = face.embed_single_face(portrait, role="portrait")
    return PageReading(
        mrz=mrz,
        page_jpeg=to_jpeg(image),
        portrait_jpeg=to_jpeg(portrait),
        portrait_embedding=face.embedding_to_bytes(embedding.embedding),
    )


def read_printed_zone(data: bytes, settings: Settings, today: date) -> PassportMrz:
    """The zone printed on a photo of the data page (image.*, mrz.* when unreadable)."""
    return _read_zone(_decode_page(data, settings), settings, today)


def _decode_page(data: bytes, settings: Settings) -> Image.Image:
    return images.decode_upload(
        data,
        max_bytes=settings.verification_max_upload_bytes,
        max_pixels=settings.verification_max_pixels,
    )


def _read_zone(image: Image.Image, settings: Settings, today: date) -> PassportMrz:
    return ocr.read_passport_mrz(
        image,
        today,
        minimum_age=settings.verification_minimum_age,
        minimum_validity_days=settings.verification_minimum_validity_days,
    )


@dataclass(frozen=True, repr=False)
class ChipAnswers:
    """What proves a chip is the original, and what it is compared with."""

    aa_challenge: bytes
    aa_signature: bytes | None = None
    ca_pending: chip_authentication.Pending | None = None  # None: none asked, or expired
    ca_response: bytes | None = None
    printed_mrz: PassportMrz | None = None  # the zone of a photo of the data page


def read_chip(
    files: chip.ChipFiles,
    store: TrustStore,
    answers: ChipAnswers,
    settings: Settings,
    today: date,
) -> PageReading:
    """Everything Qianbao needs from a passport chip's files, or the reason it cannot be
    used: passive authentication against the trust store, its signers of the passport's
    issuing state (or an exception the settings allow); the proof that the chip is the
    original (active authentication against this case's fresh challenge when the chip
    has DG15, else chip authentication when DG14 offers it: a chip that can prove it
    must); the zone in DG1 checked like a printed one, and compared with the printed one
    when a photo of the page came too; the face in DG2 as the portrait."""
    result = chip.verify_chip(
        files,
        store,
        today=today,
        aa_challenge=answers.aa_challenge,
        aa_signature=answers.aa_signature,
        printed_mrz=answers.printed_mrz,
        country_exceptions=settings.chip_signer_country_exceptions,
        stale_crl=settings.chip_stale_crl,
    )
    checks = result.checks
    if result.active_authentication == "not_run":  # DG15 present, no answer sent
        raise InvalidInput(
            "chip.active_auth",
            N_(
                "The passport chip did not prove that it is the original chip: its answer "
                "to the challenge is wrong. Read the chip again; if this repeats, the chip "
                "may be a copy."
            ),
        )
    if result.active_authentication == "not_supported":
        checks += _chip_authentication(files, result.chip_security, answers)
    if not {"active_authentication", "chip_authentication"} & set(checks):
        # Passive authentication proves the data was signed, not that this chip is the
        # one it was signed for: a copy of such a chip cannot be told apart. The photo
        # page and the face give the same rights without claiming more.
        raise InvalidInput(
            "chip.no_clone_check",
            N_(
                "This passport's chip cannot prove that it is the original chip, so a copy "
                "of it could not be told apart. Verify with the passport photo page and "
                "your face instead: your account gets the same rights."
            ),
        )
    mrz = parse_td3(
        result.mrz.line1,
        result.mrz.line2,
        today=today,
        minimum_age=settings.verification_minimum_age,
        minimum_validity_days=settings.verification_minimum_validity_days,
    )
    embedding = face.embed_single_face(result.face, role="portrait")
    return PageReading(
        mrz=mrz,
        page_jpeg=None,
        portrait_jpeg=to_jpeg(result.face),
        portrait_embedding=face.embedding_to_bytes(embedding.embedding),
        checks=checks,
    )


def _chip_authentication(
    files: chip.ChipFiles, security: chip.ChipSecurityInfo | None, answers: ChipAnswers
) -> tuple[str, ...]:
    """Chip authentication when the chip offers it and has no DG15 (nothing, for a chip
    that can prove nothing: passive authentication is then all there is)."""
    if security is None or chip_authentication.choose(security) is None:
        return ()
    if answers.ca_response is None:
        raise chip_authentication.missing()
    if answers.ca_pending is None:
        raise chip_authentication.expired()
    chip_authentication.finish(answers.ca_pending, answers.ca_response, files.dgs[14], files.dgs[1])
    return ("chip_authentication",)


def decode_frames(uploads: Sequence[bytes], settings: Settings) -> list[Image.Image]:
    """The selfie frames as images; refused whole if one is bad or there are too few."""
    if len(uploads) > settings.verification_max_frames:
        raise InvalidInput(
            "liveness.too_many_frames",
            N_("Too many frames were sent (at most {count}). Try again."),
            {"count": settings.verification_max_frames},
        )
    if len(uploads) < settings.verification_min_frames:
        raise InvalidInput(
            "liveness.too_few_frames",
            N_("Too few frames were sent (at least {count}). Follow the prompts on screen."),
            {"count": settings.verification_min_frames},
        )
    return [
        images.decode_upload(
            data,
            max_bytes=settings.verification_max_upload_bytes,
            max_pixels=settings.verification_max_pixels,
        )
        for data in uploads
    ]


def assess_face(
    frames: Sequence[Image.Image],
    challenge: tuple[str, str],
    portrait_embedding: bytes,
    settings: Settings,
) -> FaceAssessment:
    """Liveness first (a spoof never reaches the comparison), then the most frontal frame
    against the passport portrait."""
    stored = tuple(to_jpeg(shrink(frame, STORED_FRAME_WIDTH)) for frame in frames)
    result = liveness.check_liveness(frames, challenge)
    report = json.dumps(liveness_report(result), separators=(",", ":"))
    if not result.passed:
        return FaceAssessment(
            "not_live", result.reason, result.message, dict(result.params), None, report, stored
        )
    selfie = face.embed_single_face(frames[result.frontal_index], role="selfie")
    # Only the portrait's embedding is kept, not where the face was on the page.
    portrait = face.Face(face.FaceBox(0, 0, 0, 0), face.embedding_from_bytes(portrait_embedding))
    comparison = face.compare(
        portrait,
        selfie,
        match_threshold=settings.face_match_threshold,
        review_margin=settings.face_review_margin,
    )
    if comparison.outcome == "match":
        return FaceAssessment("match", None, None, {}, comparison.distance, report, stored)
    if comparison.outcome == "review":
        return FaceAssessment(
            "review", "face.borderline", None, {}, comparison.distance, report, stored
        )
    return FaceAssessment(
        "no_match",
        "face.no_match",
        N_(
            "The face in the video does not match the passport photo. Use your own "
            "passport, take off glasses or a hat, and face a bright light."
        ),
        {},
        comparison.distance,
        report,
        stored,
    )


def liveness_report(result: liveness.LivenessResult) -> dict[str, Any]:
    return {
        "passed": result.passed,
        "reason": result.reason,
        "frontal_index": result.frontal_index,
        "flat_residual": result.flat_residual,
        "yaw": [round(value, 1) for value in result.yaw],
        "blink": [round(value, 2) for value in result.blink],
        "smile": [round(value, 2) for value in result.smile],
    }


def to_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=STORED_JPEG_QUALITY)
    return buffer.getvalue()


def shrink(image: Image.Image, width: int) -> Image.Image:
    if image.width <= width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)
