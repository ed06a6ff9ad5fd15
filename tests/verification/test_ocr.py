"""Reading the passport zone from an image: synthetic data pages, OCR-B cell classifier.

Pages come from ``tests/verification/passport_pages.py`` (OCR-B from Debian's
``fonts-ocr-b``; skipped without it). Each read takes about a tenth of a second; the
read rate over hundreds of pages is measured by ``bench/mrz_read_rate.py``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from qianbao.errors import InvalidInput
from qianbao.verification.mrz import TD3_LENGTH, PassportMrz
from qianbao.verification.mrz_glyphs import ALPHABET, templates
from qianbao.verification.ocr import (
    MIN_MARGIN_UNCHECKED,
    ZoneRead,
    image_quality,
    read_passport_mrz,
)
from tests.verification.passport_pages import (
    MRZ_FONT_SIZE,
    MRZ_LEFT,
    MRZ_TOP,
    TODAY,
    PassportData,
    corrupt_check_digit,
    encode,
    ocr_b_font_path,
    random_passport,
    render_page,
)

pytestmark = pytest.mark.skipif(
    ocr_b_font_path() is None, reason="the OCR-B font is missing (apt-get install fonts-ocr-b)"
)

SEEDS = (8, 21)


def passport(seed: int = SEEDS[0]) -> PassportData:
    return random_passport(random.Random(seed))


def refused(data: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read_passport_mrz(data, TODAY)
    return caught.value


def assert_reads_back(result: PassportMrz, truth: PassportData) -> None:
    assert (result.line1, result.line2) == truth.lines()
    assert result.document_number == truth.document_number
    assert result.birth_date == truth.birth_date
    assert result.expiry_date == truth.expiry_date
    assert result.nationality == truth.nationality


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("fmt", "quality"), [("PNG", 0), ("JPEG", 85)])
def test_a_clean_page_reads_back_exactly(seed: int, fmt: str, quality: int) -> None:
    truth = passport(seed)
    data = encode(render_page(truth, seed=seed), fmt, quality or 90)
    assert image_quality(data) is None
    assert_reads_back(read_passport_mrz(data, TODAY), truth)


@pytest.mark.parametrize(
    "spoilt",
    [
        {"rotation": -3.0, "margin": 60},
        {"perspective": 0.02, "margin": 40},
        {"brightness": 0.45, "noise": 4.0},
        {"shade": 0.55},
        {"blur": 1.0},
    ],
    ids=["rotated", "perspective", "dim and noisy", "uneven light", "slight blur"],
)
def test_a_photo_less_than_perfect_still_reads_back(spoilt: dict[str, Any]) -> None:
    truth = passport(SEEDS[1])
    data = encode(render_page(truth, seed=SEEDS[1], **spoilt), "JPEG", 85)
    assert_reads_back(read_passport_mrz(data, TODAY), truth)


def test_a_wrong_check_digit_is_refused_not_read_as_something_else() -> None:
    truth = passport()
    line1, line2 = truth.lines()
    page = render_page(truth, mrz=(line1, corrupt_check_digit(line2, 9)), seed=SEEDS[0])
    assert refused(encode(page)).code == "mrz.check_digit"


@pytest.mark.parametrize(("printed", "overprinted"), [("M", "N"), ("D", "O")])
def test_a_name_letter_that_could_be_two_letters_is_refused_not_guessed(
    printed: str, overprinted: str
) -> None:
    # Two letters printed on top of each other in the surname: no check digit covers
    # it, so the reader must not pick one of the two.
    truth = passport()
    line1, line2 = truth.lines()
    position = 5  # the surname's first letter
    line1 = line1[:position] + printed + line1[position + 1 :]
    page = render_page(truth, mrz=(line1, line2), seed=SEEDS[0])
    font = ImageFont.truetype(str(ocr_b_font_path()), MRZ_FONT_SIZE)
    x = MRZ_LEFT + font.getlength(line1[:position])
    ImageDraw.Draw(page).text((x, MRZ_TOP[0]), overprinted, font=font, fill=(15, 15, 15))
    assert refused(encode(page)).code == "mrz.unclear"


def test_a_check_digit_spares_a_wide_margin_only_where_it_would_catch_the_misread() -> None:
    margins = np.full(2 * TD3_LENGTH, 0.5, dtype=np.float32)
    blind_margins = margins.copy()
    name, composite = 7, TD3_LENGTH + 43
    narrow = MIN_MARGIN_UNCHECKED / 2
    margins[name] = margins[composite] = narrow  # close to a character of another value
    read = ZoneRead(line1="", line2="", margins=margins, blind_margins=blind_margins)
    assert read.unsure_positions() == [name]

    number = TD3_LENGTH + 3  # close to a character of the same check value ("S" for "8")
    blind_margins[number] = narrow
    assert read.unsure_positions() == [name, number]

    blind_margins[number] = 0.5
    margins[number] = margins[number + 1] = narrow  # two close calls in one field
    assert read.unsure_positions() == [name, number, number + 1]


def test_the_templates_cover_every_zone_character() -> None:
    shipped = templates()
    assert set(shipped.labels.tolist()) == set(range(len(ALPHABET)))


def test_a_very_dark_page_is_too_dark() -> None:
    data = encode(render_page(passport(), brightness=0.12, seed=SEEDS[0]))
    assert image_quality(data) == "image.too_dark"
    assert refused(data).code == "image.too_dark"


def test_a_heavily_blurred_page_is_blurred() -> None:
    data = encode(render_page(passport(), blur=5.0, seed=SEEDS[0]))
    assert refused(data).code == "image.blurred"


def test_glare_over_the_zone_is_glare() -> None:
    data = encode(render_page(passport(), glare=1.6, seed=SEEDS[0]))
    assert refused(data).code == "image.glare"


def test_a_page_cut_off_through_the_zone_is_cut_off() -> None:
    data = encode(render_page(passport(), cut_right=0.12, seed=SEEDS[0]))
    assert refused(data).code == "image.cut_off"


def test_a_page_without_a_zone_has_no_zone() -> None:
    data = encode(render_page(None, seed=SEEDS[0]))
    assert refused(data).code == "mrz.not_found"


def test_a_white_scan_is_not_glare() -> None:
    page = render_page(passport(), seed=SEEDS[0])
    white = Image.eval(page, lambda value: min(255, value + 40))
    assert image_quality(encode(white)) is None


def test_something_that_is_not_an_image_is_refused() -> None:
    assert refused(b"not an image").code == "image.unreadable"
