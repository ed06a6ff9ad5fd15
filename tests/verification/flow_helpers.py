"""Shared pieces of the "Verify face" flow tests: a person, a read passport page, clips.

The photo page read (``reading``) is built from a generated passport without OCR, with
the portrait cut out and embedded for real, so the flow tests do not depend on the OCR's
read rate (tests/verification/test_ocr.py and bench/mrz_read_rate.py measure that).
The liveness clips are the synthetic performances of ``liveness_clips.py``.
"""

from __future__ import annotations

import io
import random
from datetime import date
from functools import cache

from PIL import Image

from qianbao.db import Database
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.settings import Settings
from qianbao.verification import analysis, face
from qianbao.verification.analysis import PageReading
from qianbao.verification.mrz import parse_td3
from tests.helpers import sign_up
from tests.verification import liveness_clips
from tests.verification.passport_pages import PassportData, random_passport, render_page

CHALLENGE = ("blink", "turn_left")
TODAY = date(2026, 1, 1)  # the FrozenClock's day


# The synthetic clips are still photos warped into a performance; their frames sit 0.30 to
# 0.45 from the passport portrait of the same photo, where real selfies of one person
# against a real passport photo are measured by bench/face_match.py. The flow tests
# therefore match at <= 0.50 (impostors measure 0.64 and above); the production bands
# are the settings' defaults.
SYNTHETIC_MATCH_THRESHOLD = 0.55
SYNTHETIC_REVIEW_MARGIN = 0.05


def accept_synthetic_clips(settings: Settings) -> None:
    settings.face_match_threshold = SYNTHETIC_MATCH_THRESHOLD
    settings.face_review_margin = SYNTHETIC_REVIEW_MARGIN


def new_person(db: Database, number: str = "07911 123456") -> identity.Account:
    """A person signed up by SMS code, as the app does it."""
    return sign_up(db, parse_mobile(number, "GB")).account


def passport(seed: int = 7) -> PassportData:
    return random_passport(random.Random(seed))


@cache
def page_image(seed: int = 7) -> Image.Image:
    return render_page(passport(seed))


def reading(seed: int = 7) -> PageReading:
    """What analysis.read_photo_page returns for this page, the zone taken as printed."""
    data = passport(seed)
    line1, line2 = data.lines()
    mrz = parse_td3(line1, line2, today=TODAY)
    return _reading_for(seed, mrz)


@cache
def _portrait(seed: int) -> tuple[bytes, bytes]:
    page = page_image(seed)
    portrait = face.cut_portrait(page)
    embedding = face.embed_single_face(portrait, role="portrait")
    return analysis.to_jpeg(portrait), face.embedding_to_bytes(embedding.embedding)


def _reading_for(seed: int, mrz: object) -> PageReading:
    portrait_jpeg, embedding = _portrait(seed)
    return PageReading(
        mrz=mrz,  # type: ignore[arg-type]
        page_jpeg=analysis.to_jpeg(page_image(seed)),
        portrait_jpeg=portrait_jpeg,
        portrait_embedding=embedding,
    )


@cache
def clip(photo: str, challenge: tuple[str, str] = CHALLENGE, seed: int = 1) -> list[bytes]:
    """A synthetic performance of ``challenge`` by the person in ``photo``, as JPEGs."""
    frames = liveness_clips.performance(photo, challenge, random.Random(seed))
    return [jpeg(frame) for frame in frames]


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
