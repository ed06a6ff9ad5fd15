"""Reading a passport's machine-readable zone from a photo or scan of its data page.

The zone (ICAO Doc 9303 TD3: two lines of 44 characters in OCR-B) is found at the
bottom of the page: the image is made grey, stretched to full contrast and binarized
(Otsu's threshold); the skew is measured and undone (the angle, within a few degrees,
at which the rows' ink is most concentrated); then the horizontal projection shows the
text lines, and the zone is the last two lines that run across most of the page. That
band is cropped with a margin, scaled to a fixed character height and read by Tesseract
(the Latin script model, one block of text, only the zone's characters allowed).

The text is cleaned only where nothing can be invented: spaces are dropped (the zone has
none), and a line must then have exactly 44 characters; nothing is padded, cut or
guessed; line 1 must also have the shape Doc 9303 gives it (letters, then only
fillers), which refuses the usual misread of a filler run as ``K``/``L``. The two lines
then go to :func:`qianbao.verification.mrz.read_td3`, which accepts a read only if every
check digit passes. The band is read in a few ways (:data:`OCR_VARIANTS`); since no
check digit covers line 1 (the names), nationality or sex, and the document number's
digit does not catch two O/0 swaps that cancel out, a read is accepted only when two
ways agree on every such character. A wrong read is worse than no read.

:func:`image_quality` refuses images that are too dark or too blurred to read, before
any OCR is spent on them.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pytesseract  # type: ignore[import-untyped]
from PIL import Image, ImageOps

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.verification.mrz import TD3_LENGTH, PassportMrz, read_td3

ImageInput = bytes | Image.Image
GrayArray = npt.NDArray[np.float64]

# Below this mean luminance (0-255, of the grey image) a page is too dark to read.
MIN_MEAN_LUMINANCE: Final = 45.0
# Below this variance of the Laplacian (of the grey image scaled to QUALITY_WIDTH pixels
# wide and stretched to full contrast) a page is too blurred to read.
MIN_SHARPNESS: Final = 60.0
QUALITY_WIDTH: Final = 1000
# The widest skew (degrees) undone, and the step of the search.
MAX_SKEW_DEGREES: Final = 4.0
SKEW_STEP_DEGREES: Final = 0.25
# A zone line's ink must span at least this fraction of the page's width.
MIN_LINE_SPAN: Final = 0.55
# The page is scaled to this width before the zone is looked for.
WORK_WIDTH: Final = 1250
# Tesseract reads the zone in these ways, in turn: (the characters' height in pixels,
# binarized or left grey). Each way misreads different characters. A read is accepted
# only if every check digit passes and another way read the same characters where the
# check digits are weak or absent (see read_passport_mrz).
OCR_VARIANTS: Final[tuple[tuple[int, bool], ...]] = ((28, False), (48, True), (40, False))
MRZ_WHITELIST: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
TESSERACT_TIMEOUT_SECONDS: Final = 20.0

# Errors that say the read is wrong (so another OCR variant may do better), as opposed
# to a good read of a passport refused for what it says (expired, under age...).
READ_ERRORS: Final = frozenset(
    {
        "mrz.length",
        "mrz.characters",
        "mrz.document_type",
        "mrz.check_digit",
        "mrz.composite_check_digit",
        "mrz.date",
    }
)

_NOT_FOUND_MESSAGE: Final = N_(
    "No machine-readable zone was found on this image. Photograph the whole photo page "
    "of your passport, with the two lines of characters at the bottom sharp and in full."
)


def load_image(image: ImageInput) -> Image.Image:
    """``image`` as a PIL image, turned upright as its EXIF orientation says."""
    if isinstance(image, Image.Image):
        return image
    try:
        opened = Image.open(io.BytesIO(image))
        opened.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInput(
            "image.unreadable",
            N_("This file is not an image that can be read. Send a JPEG or PNG photo."),
        ) from error
    return ImageOps.exif_transpose(opened)


def image_quality(image: ImageInput) -> str | None:
    """``None`` when the image is good enough to read, else the code of its defect.

    ``image.too_dark``: the mean luminance is below :data:`MIN_MEAN_LUMINANCE`.
    ``image.blurred``: the variance of a Laplacian filter (at a fixed width, after
    stretching the contrast) is below :data:`MIN_SHARPNESS`.
    """
    gray = load_image(image).convert("L")
    if float(np.asarray(gray, dtype=np.float64).mean()) < MIN_MEAN_LUMINANCE:
        return "image.too_dark"
    if sharpness(gray) < MIN_SHARPNESS:
        return "image.blurred"
    return None


def check_image_quality(image: ImageInput) -> None:
    """Raise :class:`InvalidInput` with the code of :func:`image_quality`, if any."""
    defect = image_quality(image)
    if defect == "image.too_dark":
        raise InvalidInput(
            "image.too_dark",
            N_("This photo is too dark to read. Take it again in better light."),
        )
    if defect == "image.blurred":
        raise InvalidInput(
            "image.blurred",
            N_(
                "This photo is too blurred to read. Hold the camera still, let it focus, "
                "and take it again."
            ),
        )


def sharpness(gray: Image.Image) -> float:
    """The variance of the 4-neighbour Laplacian of ``gray`` at :data:`QUALITY_WIDTH`."""
    if gray.width != QUALITY_WIDTH:
        height = max(1, round(gray.height * QUALITY_WIDTH / gray.width))
        gray = gray.resize((QUALITY_WIDTH, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(ImageOps.autocontrast(gray, cutoff=1), dtype=np.float64)
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    laplacian = (
        pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:]
        - 4 * pixels[1:-1, 1:-1]
    )  # fmt: skip
    return float(laplacian.var())


def read_passport_mrz(
    image: ImageInput,
    today: date,
    *,
    minimum_age: int = 18,
    minimum_validity_days: int = 0,
    extra_codes: Collection[str] = frozenset(),
    check_quality: bool = True,
) -> PassportMrz:
    """The zone read from a photo of a passport's data page, every check digit passing.

    Raises :class:`InvalidInput`: ``image.too_dark`` / ``image.blurred`` (unless
    ``check_quality`` is false), ``mrz.not_found`` when no two 44-character lines were
    read, or the parser's own error (``mrz.check_digit``, ``mrz.expired``...).
    """
    picture = load_image(image)
    if check_quality:
        check_image_quality(picture)
    located = locate_mrz(picture)
    if located is None:
        raise InvalidInput("mrz.not_found", _NOT_FOUND_MESSAGE)
    # Check digits do not cover the names (line 1), nationality and sex, and cover the
    # document number and optional data only weakly against O/0 (two swaps can cancel
    # out): a read is accepted only when another OCR variant read those characters the
    # same (the confusable correction of read_td3 never touches them).
    first_error: InvalidInput | None = None
    accepted: PassportMrz | None = None
    unchecked_reads: list[str] = []
    for character_height, binarize in OCR_VARIANTS:
        lines = _ocr(prepare_band(located, character_height, binarize=binarize))
        if lines is None:
            continue
        unchecked = _unchecked(lines)
        if accepted is not None:
            if unchecked == _unchecked((accepted.line1, accepted.line2)):
                return accepted
            unchecked_reads.append(unchecked)
            continue
        try:
            result = read_td3(
                lines[0],
                lines[1],
                today,
                minimum_age=minimum_age,
                minimum_validity_days=minimum_validity_days,
                extra_codes=extra_codes,
            )
        except InvalidInput as error:
            if error.code not in READ_ERRORS:
                raise  # a good read of a passport refused for what it says
            first_error = first_error or error
            unchecked_reads.append(unchecked)
            continue
        if _unchecked((result.line1, result.line2)) in unchecked_reads:
            return result
        accepted = result
        unchecked_reads.append(unchecked)
    if accepted is not None:  # the check digits passed, but no other read confirmed it
        raise InvalidInput("mrz.not_found", _NOT_FOUND_MESSAGE)
    raise first_error or InvalidInput("mrz.not_found", _NOT_FOUND_MESSAGE)


def _unchecked(lines: tuple[str, str]) -> str:
    """The characters that no check digit covers, or that may hold a letter: line 1, and
    line 2's document number, nationality, sex and optional data."""
    line1, line2 = lines
    return "|".join((line1, line2[0:9], line2[10:13], line2[20], line2[28:42]))


def ocr_mrz_lines(image: ImageInput) -> tuple[str, str] | None:
    """The two zone lines of the first OCR variant (spaces dropped), or ``None``."""
    located = locate_mrz(load_image(image))
    if located is None:
        return None
    character_height, binarize = OCR_VARIANTS[0]
    return _ocr(prepare_band(located, character_height, binarize=binarize))


def _ocr(band: Image.Image) -> tuple[str, str] | None:
    text: str = pytesseract.image_to_string(
        band,
        lang=_language(),
        config=f"--psm 6 -c tessedit_char_whitelist={MRZ_WHITELIST}",
        timeout=TESSERACT_TIMEOUT_SECONDS,
    )
    return clean_lines(text)


def clean_lines(text: str) -> tuple[str, str] | None:
    """The last two lines of exactly 44 zone characters once spaces are dropped.

    Nothing else is changed: a line that is one character short or long is not a read.
    """
    candidates = [re.sub(r"\s+", "", line) for line in text.splitlines()]
    candidates = [line for line in candidates if line]
    for index in range(len(candidates) - 1, 0, -1):
        first, second = candidates[index - 1], candidates[index]
        if (
            len(first) == TD3_LENGTH
            and len(second) == TD3_LENGTH
            and _ZONE_LINE.fullmatch(first)
            and _ZONE_LINE.fullmatch(second)
            and _LINE1.fullmatch(first)
        ):
            return first, second
    return None


_ZONE_LINE: Final = re.compile(r"[A-Z0-9<]+")
# Line 1 as Doc 9303 lays it out: "P", a subtype or filler, the state, then names made of
# letters separated by one filler (words) or two (surname from given names), then only
# fillers. A letter after the fillers (a "<" read as "K") makes the line no read at all.
_NAME: Final = r"[A-Z]+(?:<[A-Z]+)*"
_LINE1: Final = re.compile(rf"P[A-Z<][A-Z<]{{3}}{_NAME}(?:<<{_NAME})?<*")


@dataclass(frozen=True)
class LocatedMrz:
    """The page made grey and upright, and where its zone lies on it."""

    gray: Image.Image
    box: tuple[int, int, int, int]  # left, top, right, bottom, margin included
    character_height: float  # pixels, on ``gray``


def locate_mrz(image: Image.Image) -> LocatedMrz | None:
    """Where the zone is: the last two text lines, in the lower half of the page, whose
    ink spans at least :data:`MIN_LINE_SPAN` of the page's width; ``None`` if none."""
    gray = ImageOps.autocontrast(image.convert("L"), cutoff=1)
    # Work at a fixed width: thresholds in pixels then mean the same on any photo.
    scale = WORK_WIDTH / gray.width
    gray = gray.resize((WORK_WIDTH, max(1, round(gray.height * scale))), Image.Resampling.LANCZOS)
    threshold = _otsu(np.asarray(gray, dtype=np.float64))
    lower = gray.crop((0, gray.height // 2, gray.width, gray.height))
    angle = _skew_angle(np.asarray(lower, dtype=np.float64) < threshold)
    if angle:
        gray = gray.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    ink = np.asarray(gray, dtype=np.float64) < threshold
    long_lines = [
        (top, bottom)
        for top, bottom in _text_lines(ink)
        if top >= ink.shape[0] // 2 and _span(ink[top:bottom]) >= MIN_LINE_SPAN * ink.shape[1]
    ]
    if len(long_lines) < 2:
        return None
    (top, _), (_, bottom) = long_lines[-2], long_lines[-1]
    character_height = max(1.0, _median_line_height(long_lines[-2:]))
    margin = round(character_height * 0.8)
    columns = np.flatnonzero(ink[top:bottom].any(axis=0))
    left, right = int(columns[0]), int(columns[-1]) + 1
    box = (
        max(0, left - margin),
        max(0, top - margin),
        min(ink.shape[1], right + margin),
        min(ink.shape[0], bottom + margin),
    )
    return LocatedMrz(gray=gray, box=box, character_height=character_height)


def prepare_band(located: LocatedMrz, character_height: int, *, binarize: bool) -> Image.Image:
    """The zone cropped and scaled to ``character_height``; black on white if ``binarize``."""
    band = located.gray.crop(located.box)
    factor = character_height / located.character_height
    band = band.resize(
        (max(1, round(band.width * factor)), max(1, round(band.height * factor))),
        Image.Resampling.LANCZOS,
    )
    if not binarize:
        return band
    pixels = np.asarray(band, dtype=np.float64)
    binary = np.where(pixels < _otsu(pixels), 0, 255).astype(np.uint8)
    return Image.fromarray(binary, mode="L")


def find_mrz_band(image: Image.Image) -> Image.Image | None:
    """The zone as the first OCR variant sees it (for debugging), or ``None``."""
    located = locate_mrz(image)
    if located is None:
        return None
    character_height, binarize = OCR_VARIANTS[0]
    return prepare_band(located, character_height, binarize=binarize)


def _otsu(pixels: GrayArray) -> float:
    """Otsu's threshold of a grey image (0-255)."""
    histogram = np.bincount(pixels.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    if total == 0:
        return 128.0
    levels = np.arange(256, dtype=np.float64)
    weight = np.cumsum(histogram)
    mass = np.cumsum(histogram * levels)
    background = weight[:-1]
    foreground = total - background
    valid = (background > 0) & (foreground > 0)
    mean_low = np.divide(mass[:-1], background, out=np.zeros(255), where=valid)
    mean_high = np.divide(mass[-1] - mass[:-1], foreground, out=np.zeros(255), where=valid)
    between = np.where(valid, background * foreground * (mean_low - mean_high) ** 2, 0.0)
    return float(np.argmax(between)) + 0.5


def _skew_angle(ink: npt.NDArray[np.bool_]) -> float:
    """The rotation (degrees) that makes the rows' ink most concentrated."""
    if not ink.any():
        return 0.0
    small = Image.fromarray((ink * 255).astype(np.uint8), mode="L")
    small = small.resize((small.width // 2, max(1, small.height // 2)), Image.Resampling.BOX)
    best_angle, best_score = 0.0, -1.0
    steps = round(MAX_SKEW_DEGREES / SKEW_STEP_DEGREES)
    for step in range(-steps, steps + 1):
        angle = step * SKEW_STEP_DEGREES
        rotated = small.rotate(angle, resample=Image.Resampling.BILINEAR) if angle else small
        rows = np.asarray(rotated, dtype=np.float64).sum(axis=1)
        score = float((rows**2).sum())
        if score > best_score * (1 + 1e-9):
            best_angle, best_score = angle, score
    return best_angle


def _text_lines(ink: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(top, bottom) of each run of rows that hold a text line's ink."""
    counts = ink.sum(axis=1)
    # A row belongs to a line when it holds a little ink; thin rules and specks do not.
    inked = counts >= max(8, int(0.01 * ink.shape[1]))
    lines: list[tuple[int, int]] = []
    start: int | None = None
    for row, value in enumerate(inked):
        if value and start is None:
            start = row
        elif not value and start is not None:
            if row - start >= 6:
                lines.append((start, row))
            start = None
    if start is not None and len(inked) - start >= 6:
        lines.append((start, len(inked)))
    return lines


def _span(rows: npt.NDArray[np.bool_]) -> int:
    """The width from the first to the last column holding ink, gaps allowed."""
    columns = np.flatnonzero(rows.sum(axis=0) > 0)
    if columns.size == 0:
        return 0
    # Ignore lone specks at the ends: span between the 1st and 99th percentile of ink.
    return int(np.percentile(columns, 99) - np.percentile(columns, 1))


def _median_line_height(lines: list[tuple[int, int]]) -> float:
    return float(np.median([bottom - top for top, bottom in lines]))


@cache
def _language() -> str:
    """Tesseract's Latin script model: ``Latin`` where Debian puts it, else ``script/Latin``.

    (``pytesseract.get_languages`` drops names with capitals, so ask Tesseract itself.)
    """
    command = str(pytesseract.pytesseract.tesseract_cmd)
    try:
        listing = subprocess.run(  # noqa: S603 - a fixed command, no shell
            [command, "--list-langs"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return "script/Latin"
    languages = {line.strip() for line in listing.splitlines()}
    for name in ("Latin", "script/Latin"):
        if name in languages:
            return name
    return "script/Latin"
