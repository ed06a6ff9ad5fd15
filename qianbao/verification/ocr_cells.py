"""Finding a passport's machine-readable zone on a photo and cutting it into 2 x 44 cells.

The zone (ICAO Doc 9303 TD3) is two lines of 44 characters of OCR-B at a fixed pitch,
and every one of its 88 cells holds ink (a character or the filler ``<``: the zone has
no spaces). So the characters need no reading to be found:

1. The photo is made grey at a fixed width (:data:`WORK_WIDTH`), its background light is
   measured (a grey closing wider than any stroke) and divided out, so dim or uneven
   light leaves ink as ink; ink is what is clearly darker than its surroundings.
2. The skew is the small rotation at which the rows of ink in the lower half are most
   concentrated; it is undone.
3. The horizontal projection gives the text lines; the zone is the last two lines in the
   lower half whose ink runs across most of the page.
4. Per line, the connected pieces of ink are the characters. Their centres, numbered by
   the pitch, are fitted with a quadratic (a little perspective changes the pitch along
   the line), and their tops and bottoms with straight lines. A line is a zone line
   only when that fit has exactly 44 cells.
5. Each cell (one pitch wide, the line's height plus a margin) is cut from the
   normalised image and resized to :data:`CELL_SHAPE`, ready for
   :mod:`qianbao.verification.mrz_glyphs`.

Everything here is geometry; nothing guesses a character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

ZONE_LINE_CELLS: Final = 44
# The page is scaled to this width first: pixel thresholds then mean the same everywhere.
WORK_WIDTH: Final = 1250
# (height, width) of a normalised cell, in pixels.
CELL_SHAPE: Final = (24, 18)
# How far above and below the capitals a cell reaches, in character heights.
CELL_VERTICAL_MARGIN: Final = 0.2
# Ink: at least this much darker than the local background (0 = as light, 1 = black).
INK_DARKNESS: Final = 0.3
# The widest skew undone (degrees), and the step of its search.
MAX_SKEW_DEGREES: Final = 5.0
SKEW_STEP_DEGREES: Final = 0.25
# No character is wider or taller than this fraction of the image's width.
MAX_CHARACTER_SIZE: Final = 0.045
# A zone line's ink spans at least this fraction of the page's width.
MIN_LINE_SPAN: Final = 0.55
# A zone line whose ink comes this close to the image's edge (in character heights)
# may be missing characters beyond it.
EDGE_CLEARANCE: Final = 0.3


@dataclass(frozen=True)
class ZoneLine:
    """One zone line on the deskewed page: its 44 cells and their geometry."""

    cells: FloatArray  # (44, *CELL_SHAPE), ink darkness 0..1
    centres: FloatArray  # (44,) x of each cell's centre
    pitch: float
    character_height: float
    touches_edge: bool  # the ink runs into the image's border


@dataclass(frozen=True)
class LocatedZone:
    """The page grey, deskewed and normalised, and where its zone is."""

    gray: npt.NDArray[np.uint8]  # deskewed grey at WORK_WIDTH (before normalisation)
    darkness: FloatArray  # deskewed, 0 = background, 1 = black
    box: tuple[int, int, int, int]  # left, top, right, bottom of the two lines' ink
    lines: tuple[ZoneLine, ZoneLine] | None  # None when the cells could not be cut
    skew_degrees: float
    touches_edge: bool  # the lines' ink runs into the image's border: the page is cut off


def to_work_gray(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``gray`` scaled to :data:`WORK_WIDTH` pixels wide."""
    height, width = gray.shape
    scale = WORK_WIDTH / width
    size = (WORK_WIDTH, max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(gray, size, interpolation=interpolation), dtype=np.uint8)


def darkness_of(gray: npt.NDArray[np.uint8]) -> FloatArray:
    """How much darker each pixel is than its background light (0..1).

    The background is a grey closing (a maximum then a minimum over a window wider than
    any stroke of the zone's characters), smoothed: so dim light, a shadow or a tint
    does not change what counts as ink.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (21, 21))
    background = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, kernel)
    background = cv2.GaussianBlur(background, (0, 0), 6).astype(np.float32)
    ratio = gray.astype(np.float32) / np.maximum(background, 1.0)
    return np.asarray(np.clip(1.0 - ratio, 0.0, 1.0), dtype=np.float32)


def locate_zone(gray: npt.NDArray[np.uint8]) -> LocatedZone | None:
    """The zone on ``gray`` (any size), cut into cells; ``None`` when no zone is seen."""
    work = to_work_gray(gray)
    darkness = darkness_of(work)
    valid = np.ones(work.shape, dtype=np.uint8)
    angle = _skew_angle(character_ink(darkness)[work.shape[0] // 2 :])
    if angle:
        # Filled with the page's typical grey, so the corners look neither dark nor glaring.
        work = _rotate(work, angle, fill=float(np.median(work)))
        darkness = _rotate(darkness, angle, fill=0.0)
        valid = _rotate(valid, angle, fill=0)
    ink = character_ink(darkness)
    long_lines = [
        (top, bottom)
        for top, bottom in _text_lines(ink)
        if top >= ink.shape[0] // 3 and _span(ink[top:bottom]) >= MIN_LINE_SPAN * ink.shape[1]
    ]
    if len(long_lines) < 2:
        return None
    bands = long_lines[-2], long_lines[-1]
    columns = np.flatnonzero(ink[bands[0][0] : bands[1][1]].any(axis=0))
    box = (int(columns[0]), bands[0][0], int(columns[-1]) + 1, bands[1][1])
    first = cut_line(darkness, ink, valid.astype(bool), bands[0])
    second = cut_line(darkness, ink, valid.astype(bool), bands[1])
    lines = (first, second) if first is not None and second is not None else None
    height = max(1.0, float(np.median([bottom - top for top, bottom in bands])))
    touches_edge = _touches_edge(valid.astype(bool), (box[1], box[3]), (box[0], box[2]), height)
    return LocatedZone(
        gray=work,
        darkness=darkness,
        box=box,
        lines=lines,
        skew_degrees=angle,
        touches_edge=touches_edge,
    )


def character_ink(darkness: FloatArray) -> BoolArray:
    """The ink of pieces no larger than a character can be: a portrait, a table behind
    the page or the page's own edge would otherwise join every row into one line."""
    ink = (darkness > INK_DARKNESS).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    limit = MAX_CHARACTER_SIZE * darkness.shape[1]
    small = (stats[:, cv2.CC_STAT_WIDTH] <= limit) & (stats[:, cv2.CC_STAT_HEIGHT] <= limit)
    small[0] = False  # the background
    return np.asarray(small[labels], dtype=np.bool_)


def cut_line(
    darkness: FloatArray, ink: BoolArray, valid: BoolArray, band: tuple[int, int]
) -> ZoneLine | None:
    """The 44 cells of the text line in rows ``band``, or ``None`` if it has not 44."""
    top, bottom = band
    pad = max(2, (bottom - top) // 3)
    row0, row1 = max(0, top - pad), min(darkness.shape[0], bottom + pad)
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        ink[row0:row1].astype(np.uint8), connectivity=8
    )
    boxes = stats[1:count, :4].astype(np.float64)  # x, y, width, height
    if boxes.shape[0] < ZONE_LINE_CELLS // 2:
        return None
    # The capitals and digits: the tallest pieces, however many fillers the line has.
    height = float(np.percentile(boxes[:, 3], 90))
    # Specks, and the odd stroke of a neighbouring line, are not characters.
    boxes = boxes[(boxes[:, 3] >= 0.15 * height) & (boxes[:, 2] * boxes[:, 3] >= 6)]
    pieces = _merge_overlapping(boxes)
    if len(pieces) < ZONE_LINE_CELLS // 2:
        return None
    centres = np.array([x + w / 2 for x, _, w, _ in pieces])
    numbered = _number_by_pitch(centres)
    if numbered is None:
        return None
    indices, pitch = numbered
    if indices[-1] - indices[0] + 1 != ZONE_LINE_CELLS:
        return None
    indices -= indices[0]
    order = 2 if len(centres) >= 12 else 1
    cell_x = np.polyval(np.polyfit(indices, centres, order), np.arange(ZONE_LINE_CELLS))
    tall = np.array([h >= 0.75 * height for _, _, _, h in pieces])
    tops = np.array([y for _, y, _, _ in pieces])[tall] + row0
    bottoms = np.array([y + h for _, y, _, h in pieces])[tall] + row0
    if tall.sum() < 4:
        return None
    top_fit = np.polyfit(centres[tall], tops, 1)
    bottom_fit = np.polyfit(centres[tall], bottoms, 1)
    cells = np.stack(
        [
            _cell(
                darkness, x, float(np.polyval(top_fit, x)), float(np.polyval(bottom_fit, x)), pitch
            )
            for x in cell_x
        ]
    )
    left, right = int(min(p[0] for p in pieces)), int(max(p[0] + p[2] for p in pieces))
    return ZoneLine(
        cells=cells.astype(np.float32),
        centres=cell_x.astype(np.float32),
        pitch=pitch,
        character_height=height,
        touches_edge=_touches_edge(valid, (row0, row1), (left, right), height),
    )


def _merge_overlapping(boxes: npt.NDArray[np.float64]) -> list[tuple[float, float, float, float]]:
    """Boxes sorted by x, those that overlap in x by most of the narrower one merged
    (a character broken in two pieces by a thin stroke)."""
    merged: list[tuple[float, float, float, float]] = []
    for x, y, w, h in sorted(map(tuple, boxes)):
        if merged:
            mx, my, mw, mh = merged[-1]
            overlap = min(mx + mw, x + w) - max(mx, x)
            if overlap > 0.6 * min(mw, w):
                left, top = min(mx, x), min(my, y)
                right, low = max(mx + mw, x + w), max(my + mh, y + h)
                merged[-1] = (left, top, right - left, low - top)
                continue
        merged.append((x, y, w, h))
    return merged


def _number_by_pitch(
    centres: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], float] | None:
    """Each centre's cell number (from 0) and the pitch, from the spacing of neighbours.

    Most neighbours are one pitch apart; two characters run together count as one piece
    and leave a gap of two pitches, which numbering by the pitch absorbs.
    """
    gaps = np.diff(centres)
    if gaps.size == 0:
        return None
    pitch = float(np.median(gaps))
    near = gaps[(gaps > 0.7 * pitch) & (gaps < 1.3 * pitch)]
    if near.size < 5:
        return None
    pitch = float(near.mean())
    steps = np.rint(gaps / pitch).astype(np.int64)
    if (steps < 1).any():
        return None
    indices = np.concatenate([[0], np.cumsum(steps)])
    # Refine the pitch over the whole line, where its errors average out.
    pitch = float(np.polyfit(indices, centres, 1)[0])
    return indices, pitch


def _cell(darkness: FloatArray, x: float, top: float, bottom: float, pitch: float) -> FloatArray:
    """The cell centred on ``x``, one pitch wide, resized to :data:`CELL_SHAPE`."""
    margin = CELL_VERTICAL_MARGIN * (bottom - top)
    height, width = CELL_SHAPE
    source = np.array(
        [
            [x - pitch / 2, top - margin],
            [x + pitch / 2, top - margin],
            [x - pitch / 2, bottom + margin],
        ],
        dtype=np.float32,
    )
    target = np.array([[0, 0], [width, 0], [0, height]], dtype=np.float32)
    transform = cv2.getAffineTransform(source, target)
    cell = cv2.warpAffine(
        darkness,
        transform,
        (width, height),
        flags=cv2.INTER_AREA if pitch > width else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return np.asarray(cell, dtype=np.float32)


def _touches_edge(
    valid: BoolArray, rows: tuple[int, int], columns: tuple[int, int], height: float
) -> bool:
    """Whether the ink's ends come within :data:`EDGE_CLEARANCE` of the image's border."""
    clearance = max(2, round(EDGE_CLEARANCE * height))
    row0, row1 = rows
    left, right = columns
    band = valid[row0:row1]
    if row1 >= valid.shape[0] - 1 or row0 <= 0:
        return True
    reach_left = band[:, max(0, left - clearance) : left].all()
    reach_right = band[:, right : right + clearance].all()
    inside = left - clearance >= 0 and right + clearance <= valid.shape[1]
    return not (inside and reach_left and reach_right)


def _rotate(pixels: npt.NDArray[Any], angle: float, *, fill: float) -> npt.NDArray[Any]:
    height, width = pixels.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return np.asarray(
        cv2.warpAffine(
            pixels,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=fill,
        )
    )


def _skew_angle(ink: BoolArray) -> float:
    """The rotation (degrees, counter-clockwise) that makes the rows' ink most
    concentrated: text lines are then level."""
    if not ink.any():
        return 0.0
    small = cv2.resize(ink.astype(np.float32), (ink.shape[1] // 2, max(1, ink.shape[0] // 2)))
    best_angle, best_score = 0.0, -1.0
    steps = round(MAX_SKEW_DEGREES / SKEW_STEP_DEGREES)
    for step in range(-steps, steps + 1):
        angle = step * SKEW_STEP_DEGREES
        rotated = _rotate(small, angle, fill=0.0) if angle else small
        rows = rotated.sum(axis=1, dtype=np.float64)
        score = float((rows**2).sum())
        if score > best_score * (1 + 1e-9):
            best_angle, best_score = angle, score
    return best_angle


def _text_lines(ink: BoolArray) -> list[tuple[int, int]]:
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


def _span(rows: BoolArray) -> int:
    """The width from the first to the last column holding ink, ignoring lone specks."""
    columns = np.flatnonzero(rows.sum(axis=0) > 0)
    if columns.size == 0:
        return 0
    return int(np.percentile(columns, 99) - np.percentile(columns, 1))
