"""Build ``qianbao/verification/data/mrz_glyphs.npz``: the OCR-B templates of the zone reader.

Renders lines of random zone characters in OCR-B (Debian's ``fonts-ocr-b``: OCR-B by
Norbert Schwarz, "you may freely use, modify and/or distribute this file"; Debian's
package by Matthew Skala, public domain) on page-like cards, spoils each card the way
photos are spoiled (size, blur, dim light, noise, rotation, a little perspective,
JPEG), cuts the zone into cells with the reader's own code
(:func:`qianbao.verification.ocr_cells.locate_zone`), and keeps, per character, the
means of :data:`TEMPLATES_PER_CHARACTER` clusters (k-means on normalised cells) as
8-bit images. Deterministic for a given ``--seed``.

    .venv/bin/python tools/build_mrz_glyphs.py            # about a minute
"""

from __future__ import annotations

import argparse
import glob
import io
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qianbao.verification.mrz_glyphs import ALPHABET, DATA_FILE, normalise
from qianbao.verification.ocr_cells import ZONE_LINE_CELLS, locate_zone

TEMPLATES_PER_CHARACTER = 48
OUTPUT = Path(__file__).resolve().parent.parent / "qianbao/verification/data" / DATA_FILE


def font_path() -> str:
    found = sorted(glob.glob("/usr/share/fonts/**/OCRB.otf", recursive=True))
    if not found:
        raise SystemExit("the OCR-B font is missing: apt-get install fonts-ocr-b")
    return found[0]


def random_line(rng: random.Random) -> str:
    """44 zone characters: random ones, with a run of fillers now and then."""
    characters = [rng.choice(ALPHABET) for _ in range(ZONE_LINE_CELLS)]
    if rng.random() < 0.5:
        start = rng.randrange(10, ZONE_LINE_CELLS)
        characters[start:] = "<" * (ZONE_LINE_CELLS - start)
    return "".join(characters)


def render_card(lines: tuple[str, str], rng: random.Random) -> Image.Image:
    """The two lines near the bottom of a light card, spoiled at random."""
    size = rng.randrange(22, 50)
    font = ImageFont.truetype(font_path(), size)
    pitch = font.getlength("A")
    zone_width = pitch * ZONE_LINE_CELLS
    width = round(zone_width / rng.uniform(0.65, 0.93))
    height = round(width * 0.7)
    tint = tuple(rng.randrange(190, 250) for _ in range(3))
    card = Image.new("RGB", (width, height), tint)
    draw = ImageDraw.Draw(card)
    left = rng.uniform(0.3, 0.7) * (width - zone_width)
    line_gap = size * rng.uniform(1.55, 1.95)
    top = height - size * rng.uniform(1.0, 2.0) - 2 * line_gap
    ink = rng.randrange(0, 60)
    for number, line in enumerate(lines):
        draw.text((left, top + number * line_gap), line, font=font, fill=(ink, ink, ink))
    card = card.rotate(rng.uniform(-3.0, 3.0), resample=Image.Resampling.BICUBIC, fillcolor=tint)
    pixels = np.asarray(card, dtype=np.float32)
    if rng.random() < 0.4:
        pixels = _perspective(pixels, rng, tint)
    card = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    card = card.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.8)))
    card = ImageEnhance.Brightness(card).enhance(rng.uniform(0.3, 1.05))
    pixels = np.asarray(card, dtype=np.float32)
    pixels += np.random.default_rng(rng.randrange(1 << 30)).normal(
        0, rng.uniform(0, 6), pixels.shape
    )
    card = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        card.save(buffer, "JPEG", quality=rng.randrange(35, 95))
        card = Image.open(io.BytesIO(buffer.getvalue()))
    return card.convert("L")


def _perspective(
    pixels: npt.NDArray[np.float32], rng: random.Random, tint: tuple[int, ...]
) -> npt.NDArray[np.float32]:
    height, width = pixels.shape[:2]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    jitter = 0.03 * width
    shifts = [[rng.uniform(-jitter, jitter) for _ in range(2)] for _ in range(4)]
    moved = corners + np.array(shifts, dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners, moved)
    warped = cv2.warpPerspective(
        pixels, matrix, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=tint
    )
    return np.asarray(warped, dtype=np.float32)


def collect(cards: int, seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = random.Random(seed)
    cells: list[npt.NDArray[np.float32]] = []
    labels: list[int] = []
    missed = 0
    for _ in range(cards):
        lines = random_line(rng), random_line(rng)
        zone = locate_zone(np.asarray(render_card(lines, rng)))
        if zone is None or zone.lines is None:
            missed += 1
            continue
        for line, text in zip(zone.lines, lines, strict=True):
            cells.extend(line.cells)
            labels.extend(ALPHABET.index(character) for character in text)
    print(f"{cards} cards, {missed} not cut into 2 x 44 cells, {len(labels)} cells")
    return np.stack(cells), np.array(labels)


def cluster_means(cells: npt.NDArray[np.float32], count: int, seed: int) -> npt.NDArray[np.float32]:
    """The means of ``count`` k-means clusters of ``cells`` (by normalised correlation)."""
    if len(cells) <= count:
        return cells
    vectors = normalise(cells)
    rng = np.random.default_rng(seed)
    centres = vectors[rng.choice(len(vectors), count, replace=False)]
    for _ in range(15):
        nearest = np.argmax(vectors @ centres.T, axis=1)
        for index in range(count):
            members = vectors[nearest == index]
            if len(members):
                centres[index] = members.mean(axis=0)
    nearest = np.argmax(vectors @ centres.T, axis=1)
    means = [
        cells[nearest == index].mean(axis=0) for index in range(count) if (nearest == index).any()
    ]
    return np.stack(means)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=600)
    parser.add_argument("--seed", type=int, default=44)
    args = parser.parse_args()
    cells, labels = collect(args.cards, args.seed)
    kept_cells: list[npt.NDArray[np.float32]] = []
    kept_labels: list[int] = []
    for index, character in enumerate(ALPHABET):
        means = cluster_means(cells[labels == index], TEMPLATES_PER_CHARACTER, args.seed + index)
        print(f"  {character}: {int((labels == index).sum())} cells, {len(means)} templates")
        kept_cells.extend(means)
        kept_labels.extend([index] * len(means))
    stacked = (np.stack(kept_cells).clip(0, 1) * 255).round().astype(np.uint8)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, cells=stacked, labels=np.array(kept_labels, dtype=np.uint8))
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
