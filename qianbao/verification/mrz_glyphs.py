"""Telling which of the 37 zone characters a cell of a passport's zone holds.

The zone is printed in OCR-B, a font made to be read by machines: its 37 characters
(``A``-``Z``, ``0``-``9``, ``<``) are drawn to look unlike each other. So no language model
is needed, only templates: ``data/mrz_glyphs.npz`` holds cells of each character cut by
the same code that cuts a photo's zone (:mod:`qianbao.verification.ocr_cells`), from
lines of OCR-B rendered at several sizes and spoiled in the ways photos are (blur, dim
light, JPEG, rotation, noise). ``tools/build_mrz_glyphs.py`` makes it from Debian's
``fonts-ocr-b`` (OCR-B by Norbert Schwarz, "you may freely use, modify and/or
distribute"; packaged by Matthew Skala, public domain).

A cell is compared with every template by normalised correlation (both made zero-mean
and unit-length, so the light and the ink's darkness do not matter); a character's
score is its best template's. The margin between the best character's score and the
next one's says how sure the read is: :mod:`qianbao.verification.ocr` accepts a
character that no check digit covers only with a wide margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import numpy as np
import numpy.typing as npt

ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
DATA_FILE: Final = "mrz_glyphs.npz"


@dataclass(frozen=True)
class Templates:
    vectors: npt.NDArray[np.float32]  # (templates, pixels), zero-mean, unit length
    labels: npt.NDArray[np.int64]  # (templates,) index into ALPHABET, sorted
    starts: npt.NDArray[np.int64]  # (37,) where each character's templates begin


@dataclass(frozen=True)
class CellReads:
    """Per cell, the best character, the runner-up and their scores."""

    best: str
    second: str
    scores: npt.NDArray[np.float32]  # (cells,) best character's score, -1..1
    margins: npt.NDArray[np.float32]  # (cells,) best minus the runner-up's score
    character_scores: npt.NDArray[np.float32]  # (cells, 37) each character's score


def normalise(cells: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each cell flattened, made zero-mean and unit length (a blank cell stays zero)."""
    flat = cells.reshape(cells.shape[0], -1).astype(np.float32)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.asarray(flat / np.maximum(norms, 1e-6), dtype=np.float32)


@cache
def templates() -> Templates:
    """The shipped templates (see the module's docstring)."""
    source = resources.files("qianbao.verification").joinpath("data", DATA_FILE)
    with resources.as_file(source) as path, np.load(path) as data:
        cells = data["cells"].astype(np.float32) / 255.0
        labels = data["labels"].astype(np.int64)
    order = np.argsort(labels, kind="stable")
    cells, labels = cells[order], labels[order]
    starts = np.searchsorted(labels, np.arange(len(ALPHABET)))
    if np.unique(labels).size != len(ALPHABET):
        raise ValueError(f"{DATA_FILE} lacks templates of some characters")
    return Templates(vectors=normalise(cells), labels=labels, starts=starts)


def classify(cells: npt.NDArray[np.float32]) -> CellReads:
    """The character each cell of ``cells`` (n, height, width) most resembles."""
    shipped = templates()
    similarity = normalise(cells) @ shipped.vectors.T  # (cells, templates)
    per_character = np.maximum.reduceat(similarity, shipped.starts, axis=1)
    ranked = np.argsort(-per_character, axis=1)
    rows = np.arange(cells.shape[0])
    best_scores = per_character[rows, ranked[:, 0]]
    second_scores = per_character[rows, ranked[:, 1]]
    return CellReads(
        best="".join(ALPHABET[index] for index in ranked[:, 0]),
        second="".join(ALPHABET[index] for index in ranked[:, 1]),
        scores=best_scores,
        margins=np.asarray(best_scores - second_scores, dtype=np.float32),
        character_scores=np.asarray(per_character, dtype=np.float32),
    )
