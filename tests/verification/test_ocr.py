"""Reading the passport zone from an image: synthetic data pages, OCR by Tesseract.

Each OCR takes a second or more, so the cases are few. Skipped without the
``tesseract`` binary or the OCR-B font (``apt-get install tesseract-ocr
tesseract-ocr-script-latn fonts-ocr-b``).
"""

from __future__ import annotations

import random
import shutil

import pytest

from qianbao.errors import InvalidInput
from qianbao.verification.mrz import PassportMrz
from qianbao.verification.ocr import image_quality, read_passport_mrz
from tests.verification.passport_pages import (
    TODAY,
    PassportData,
    corrupt_check_digit,
    encode,
    ocr_b_font_path,
    random_passport,
    render_page,
)

pytestmark = [
    pytest.mark.skipif(
        shutil.which("tesseract") is None,
        reason="the tesseract binary is missing (apt-get install tesseract-ocr "
        "tesseract-ocr-script-latn)",
    ),
    pytest.mark.skipif(
        ocr_b_font_path() is None, reason="the OCR-B font is missing (apt-get install fonts-ocr-b)"
    ),
]

# A seed whose clean page reads back in PNG and JPEG with Tesseract 5.3.0 and Debian 12's
# Latin model (not every clean page does: see bench/mrz_read_rate.py for the rate).
SEED = 8


def passport() -> PassportData:
    return random_passport(random.Random(SEED))


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


@pytest.mark.parametrize(("fmt", "quality"), [("PNG", 0), ("JPEG", 85)])
def test_a_clean_page_reads_back_exactly(fmt: str, quality: int) -> None:
    truth = passport()
    data = encode(render_page(truth, seed=SEED), fmt, quality or 90)
    assert image_quality(data) is None
    assert_reads_back(read_passport_mrz(data, TODAY), truth)


def test_a_wrong_check_digit_is_refused_not_read_as_something_else() -> None:
    truth = passport()
    line1, line2 = truth.lines()
    page = render_page(truth, mrz=(line1, corrupt_check_digit(line2, 9)), seed=SEED)
    error = refused(encode(page))
    assert error.code in {"mrz.check_digit", "mrz.composite_check_digit", "mrz.not_found"}


def test_a_very_dark_page_is_too_dark() -> None:
    data = encode(render_page(passport(), brightness=0.12, seed=SEED))
    assert image_quality(data) == "image.too_dark"
    assert refused(data).code == "image.too_dark"


def test_a_heavily_blurred_page_is_refused_never_misread() -> None:
    data = encode(render_page(passport(), blur=5.0, seed=SEED))
    assert refused(data).code in {"image.blurred", "mrz.not_found"}


def test_a_page_without_a_zone_has_no_zone() -> None:
    data = encode(render_page(None, seed=SEED))
    assert refused(data).code == "mrz.not_found"


def test_something_that_is_not_an_image_is_refused() -> None:
    assert refused(b"not an image").code == "image.unreadable"
