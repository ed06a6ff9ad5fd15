"""Reading a passport's machine-readable zone from a photo or scan of its data page.

The zone (ICAO Doc 9303 TD3) is two lines of 44 characters in OCR-B, a fixed-pitch font
made for machines, and every cell holds ink. So it is read without any language model:

1. The image is checked first (:func:`image_quality`): too dark, blurred, no zone found,
   glare (a saturated blob) over the zone, or the zone running into the image's edge
   (the page cut off). Each is its own error, in plain words, saying what to do.
2. :mod:`qianbao.verification.ocr_cells` finds the zone, undoes the skew and cuts each
   line into its 44 cells by the pitch of its characters.
3. :mod:`qianbao.verification.mrz_glyphs` names each cell's character by normalised
   correlation with OCR-B templates, with a margin (best minus runner-up) that says how
   sure it is.
4. :func:`qianbao.verification.mrz.read_td3` checks every check digit (correcting
   letters read in digit-only fields, ``O`` -> ``0``...).

A wrong read is worse than no read. The check digits do not cover the names (line 1),
nationality or sex, and a check digit does not notice a character swapped for one of the
same check value modulo 10 (``S``/``8``, ``Z``/``5``, ``G``/``6``, ``<``/``0``). So where
no check digit looks, every character must beat every other by
:data:`MIN_MARGIN_UNCHECKED`, and under a check digit it must beat by that much the
characters its check digit cannot tell from it (and at most one cell per field may be
close to anything else: two misreads can cancel out). Otherwise the read is refused
(``mrz.unclear``) and the person is asked for a better photo.

Tesseract is no longer used: its language model guesses, and it took seconds per page.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.verification.mrz import TD3_LENGTH, PassportMrz, read_td3
from qianbao.verification.mrz_glyphs import ALPHABET, classify
from qianbao.verification.ocr_cells import LocatedZone, locate_zone, to_work_gray

ImageInput = bytes | Image.Image

# Below this mean luminance (0-255, of the grey image) a page is too dark to read.
MIN_MEAN_LUMINANCE: Final = 45.0
# Below this variance of the Laplacian (of the grey image scaled to QUALITY_WIDTH pixels
# wide and stretched to full contrast) a page is too blurred to read.
MIN_SHARPNESS: Final = 40.0
QUALITY_WIDTH: Final = 1000
# Glare: pixels at least this bright (0-255) are saturated; a blob of them over the zone
# at least GLARE_MIN_AREA character cells large hides characters.
SATURATED: Final = 250
GLARE_MIN_AREA: Final = 1.0
# A page whose own background is this bright is a white scan, not glare.
GLARE_MAX_BACKGROUND: Final = 246
# The least margin (best template score minus the runner-up's, normalised correlation)
# for a character that no check digit would catch if misread (see ZoneRead).
MIN_MARGIN_UNCHECKED: Final = 0.03

# Errors that say the read is wrong, as opposed to a good read of a passport refused for
# what it says (expired, under age...).
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

# The fields of line 2 that a check digit covers, with their check digit, as 0-based
# positions in the 88 characters of both lines: document number, date of birth, date of
# expiry, optional data; the composite check digit covers them all again.
_LINE2: Final = TD3_LENGTH
CHECKED_FIELDS: Final = tuple(
    tuple(range(_LINE2 + start, _LINE2 + end))
    for start, end in ((0, 10), (13, 20), (21, 28), (28, 43), (43, 44))
)
_CHECKED_FIELD: Final = frozenset(position for field in CHECKED_FIELDS for position in field)

_MESSAGES: Final = {
    "image.too_dark": N_(
        "This photo is too dark to read. Move to a brighter place and take it again."
    ),
    "image.blurred": N_(
        "This photo is too blurred to read. Hold the camera still, let it focus, and take it again."
    ),
    "image.glare": N_(
        "There is glare on the two lines of characters at the bottom of the page. Tilt the "
        "passport or move away from the light, and take the photo again."
    ),
    "image.cut_off": N_(
        "The page is cut off: the two lines of characters at the bottom must be in the "
        "photo from end to end. Move the camera back a little and take it again."
    ),
    "mrz.not_found": N_(
        "No machine-readable zone was found on this image. Photograph the whole photo page "
        "of your passport, with the two lines of characters at the bottom sharp and in full."
    ),
    "mrz.unclear": N_(
        "Some characters of the two lines at the bottom of the page could not be read with "
        "certainty. Take the photo again, sharp, straight and evenly lit."
    ),
}


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


@dataclass(frozen=True)
class Assessment:
    """What :func:`image_quality` found: the defect's code (``None`` if none) and the
    zone, when it was looked for and found."""

    defect: str | None
    zone: LocatedZone | None


def image_quality(image: ImageInput) -> str | None:
    """``None`` when the image is good enough to read, else the code of its defect.

    In this order: ``image.too_dark`` (mean luminance below :data:`MIN_MEAN_LUMINANCE`),
    ``image.blurred`` (variance of a Laplacian, at a fixed width after stretching the
    contrast, below :data:`MIN_SHARPNESS`), ``image.glare`` (a saturated blob over the
    zone, or where it should be), ``mrz.not_found`` (no two zone lines), and
    ``image.cut_off`` (the zone runs into the image's edge).
    """
    return assess(load_image(image)).defect


def check_image_quality(image: ImageInput) -> None:
    """Raise :class:`InvalidInput` with the code of :func:`image_quality`, if any."""
    raise_defect(image_quality(image))


def raise_defect(defect: str | None) -> None:
    if defect is not None:
        raise InvalidInput(defect, _MESSAGES[defect])


def assess(picture: Image.Image) -> Assessment:
    gray = picture.convert("L")
    if float(np.asarray(gray, dtype=np.float64).mean()) < MIN_MEAN_LUMINANCE:
        return Assessment("image.too_dark", None)
    if sharpness(gray) < MIN_SHARPNESS:
        return Assessment("image.blurred", None)
    pixels = np.asarray(gray, dtype=np.uint8)
    zone = locate_zone(pixels)
    if zone is None:
        work = to_work_gray(pixels)
        # Glare that wiped the zone out leaves no zone to find: say what hid it. Only the
        # bottom quarter, where the zone is, counts: a portrait may hold white.
        bottom = work[work.shape[0] * 3 // 4 :]
        if _has_glare(bottom, character_height=work.shape[1] / 50):
            return Assessment("image.glare", None)
        return Assessment("mrz.not_found", None)
    if _glare_over_zone(zone):
        return Assessment("image.glare", zone)
    if zone.touches_edge:
        return Assessment("image.cut_off", zone)
    return Assessment(None, zone)


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


def _glare_over_zone(zone: LocatedZone) -> bool:
    left, top, right, bottom = zone.box
    height = max(1.0, (bottom - top) / 3)
    pad = round(height)
    region = zone.gray[max(0, top - pad) : bottom + pad, max(0, left - pad) : right + pad]
    return _has_glare(region, character_height=height)


def _has_glare(region: npt.NDArray[np.uint8], *, character_height: float) -> bool:
    """Whether ``region`` holds a saturated blob of at least :data:`GLARE_MIN_AREA`
    character cells on a page that is not itself white."""
    if region.size == 0 or float(np.median(region)) >= GLARE_MAX_BACKGROUND:
        return False
    saturated = (region >= SATURATED).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(saturated, connectivity=8)
    if count <= 1:
        return False
    largest = int(stats[1:, cv2.CC_STAT_AREA].max())
    return largest >= GLARE_MIN_AREA * character_height * character_height * 0.7


@dataclass(frozen=True)
class ZoneRead:
    """The characters read from the zone's 88 cells, and how sure each one is."""

    line1: str
    line2: str
    margins: npt.NDArray[np.float32]  # (88,) best score minus the runner-up's
    # (88,) best score minus that of the best other character with the same check value
    # modulo 10: the margin against a misread that no check digit would notice.
    blind_margins: npt.NDArray[np.float32]

    def unsure_positions(self) -> list[int]:
        """0-based positions (of both lines together) not read with enough certainty.

        Where no check digit looks (line 1, nationality, sex), the best character must
        beat every other by :data:`MIN_MARGIN_UNCHECKED`. Under a check digit it must
        beat by that much only the characters the check digit cannot tell from it
        (``S``/``8``, ``<``/``0``...); and at most one cell of a check digit's field may
        be close to any other character, since two misreads can cancel out.
        """
        unsure = [
            position
            for position in range(2 * TD3_LENGTH)
            if (
                self.blind_margins[position]
                if position in _CHECKED_FIELD
                else self.margins[position]
            )
            < MIN_MARGIN_UNCHECKED
        ]
        for field in CHECKED_FIELDS:
            close = [
                position for position in field if self.margins[position] < MIN_MARGIN_UNCHECKED
            ]
            if len(close) > 1:
                unsure.extend(close)
        return sorted(set(unsure))


def read_zone(zone: LocatedZone) -> ZoneRead | None:
    """The characters of the zone's cells, or ``None`` if it was not cut into 2 x 44."""
    if zone.lines is None:
        return None
    reads = classify(np.concatenate([line.cells for line in zone.lines]))
    return ZoneRead(
        line1=reads.best[:TD3_LENGTH],
        line2=reads.best[TD3_LENGTH:],
        margins=reads.margins,
        blind_margins=_blind_margins(reads.best, reads.character_scores),
    )


def _blind_margins(best: str, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Per cell, the best score minus the best score of another character with the same
    check value modulo 10 (a swap no check digit would notice)."""
    residues = np.array([_check_value(character) % 10 for character in ALPHABET])
    margins = np.empty(len(best), dtype=np.float32)
    for position, character in enumerate(best):
        index = ALPHABET.index(character)
        twins = (residues == residues[index]) & (np.arange(len(ALPHABET)) != index)
        margins[position] = scores[position, index] - scores[position, twins].max()
    return margins


def _check_value(character: str) -> int:
    """A character's value in Doc 9303's check digits: digits, A = 10 ... Z = 35, < = 0."""
    if character.isdigit():
        return int(character)
    return 0 if character == "<" else ord(character) - ord("A") + 10


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

    Raises :class:`InvalidInput`: the defects of :func:`image_quality` (the image ones
    only when ``check_quality``), ``mrz.not_found`` when no 2 x 44 characters were found,
    the parser's own errors (``mrz.check_digit``, ``mrz.expired``...), or ``mrz.unclear``
    when the check digits pass but a character they do not cover was not read with
    certainty.
    """
    picture = load_image(image)
    assessment = assess(picture)
    zone = assessment.zone
    if check_quality or assessment.defect == "mrz.not_found":
        raise_defect(assessment.defect)
    if zone is None:
        zone = locate_zone(np.asarray(picture.convert("L"), dtype=np.uint8))
    read = read_zone(zone) if zone is not None else None
    if read is None:
        raise InvalidInput("mrz.not_found", _MESSAGES["mrz.not_found"])
    result = read_td3(
        read.line1,
        read.line2,
        today,
        minimum_age=minimum_age,
        minimum_validity_days=minimum_validity_days,
        extra_codes=extra_codes,
    )
    if read.unsure_positions():
        raise_defect("mrz.unclear")
    return result
