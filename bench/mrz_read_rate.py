"""Passport zone OCR: read rate, wrong reads and time per image on synthetic data pages.

Generates pages with ``tests/verification/passport_pages.py`` (OCR-B zone, valid check
digits, fixed seeds) in the variations of :data:`VARIATIONS`, reads each with
``qianbao.verification.ocr.read_passport_mrz`` and prints, per variation, the reads and
refusals; the read rate on good images (clean PNG and JPEG 90) and overall (the
readable variations); the wrong reads (a read whose lines differ from the truth: the
goal is 0); and the time per image (p50/p99, one core). The spoiled variations of
:data:`REFUSALS` must be refused with their own code: the share that was is printed.
``--failures`` prints each failed read's characters, margins and the truth.

    .venv/bin/python bench/mrz_read_rate.py             # 360 pages
    .venv/bin/python bench/mrz_read_rate.py --quick     # 72 pages

Needs the OCR-B font (``apt-get install fonts-ocr-b``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from qianbao.errors import InvalidInput
from qianbao.verification.ocr import load_image, read_passport_mrz, read_zone
from qianbao.verification.ocr_cells import locate_zone
from tests.verification.passport_pages import (
    TODAY,
    encode,
    ocr_b_font_path,
    random_passport,
    render_page,
)

# name: (render options, image format, JPEG quality). Rotations alternate in sign.
VARIATIONS: dict[str, tuple[dict[str, Any], str, int]] = {
    "good PNG": ({}, "PNG", 0),
    "good JPEG 90": ({}, "JPEG", 90),
    "dim 0.6": ({"brightness": 0.6}, "PNG", 0),
    "dim 0.35+noise": ({"brightness": 0.35, "noise": 4.0}, "JPEG", 85),
    "uneven light": ({"shade": 0.55}, "JPEG", 85),
    "blur 1.0": ({"blur": 1.0}, "PNG", 0),
    "blur 1.6": ({"blur": 1.6}, "JPEG", 85),
    "rotation 2°": ({"rotation": 2.0}, "PNG", 0),
    "rotation 4°": ({"rotation": 4.0, "margin": 60}, "JPEG", 85),
    "perspective": ({"perspective": 0.02, "margin": 40}, "JPEG", 85),
    "JPEG 50": ({}, "JPEG", 50),
    "photo": (
        {"margin": 60, "rotation": 3.0, "perspective": 0.015, "noise": 5.0, "blur": 0.7},
        "JPEG",
        75,
    ),
}
GOOD = ("good PNG", "good JPEG 90")
# Spoiled pages that must be refused, with the code that says why.
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "too dark": ({"brightness": 0.12}, "image.too_dark"),
    "heavy blur": ({"blur": 5.0}, "image.blurred"),
    "glare": ({"glare": 1.6}, "image.glare"),
    "cut off": ({"cut_right": 0.12}, "image.cut_off"),
    "no zone": ({"no_zone": True}, "mrz.not_found"),
}
GOAL_GOOD_READ_RATE = 0.95


def page_bytes(seed: int, options: dict[str, Any], fmt: str, quality: int) -> tuple[bytes, Any]:
    passport = random_passport(random.Random(seed))
    options = dict(options)
    if "rotation" in options and seed % 2:
        options["rotation"] = -options["rotation"]
    no_zone = options.pop("no_zone", False)
    page = render_page(None if no_zone else passport, seed=seed, **options)
    return encode(page, fmt, quality or 90), passport


def describe_failure(data: bytes, truth: tuple[str, str]) -> str:
    """The characters read, the truth, and each wrong or unsure cell's margin."""
    picture = load_image(data)
    zone = locate_zone(np.asarray(picture.convert("L")))
    read = read_zone(zone) if zone is not None else None
    if read is None:
        return "    (zone not cut into 2 x 44 cells)"
    wrong = [
        f"{position}:{got}/{want}({read.margins[position]:.3f})"
        for position, (got, want) in enumerate(
            zip(read.line1 + read.line2, truth[0] + truth[1], strict=True)
        )
        if got != want
    ]
    unsure = read.unsure_positions()
    return (
        f"    read  {read.line1} {read.line2}\n    truth {truth[0]} {truth[1]}\n"
        f"    wrong cells {wrong}; unsure {unsure}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30, help="pages per variation")
    parser.add_argument("--quick", action="store_true", help="6 pages per variation")
    parser.add_argument("--seed", type=int, default=9303)
    parser.add_argument("--failures", action="store_true", help="print each failed read")
    args = parser.parse_args()
    per_variation = 6 if args.quick else args.pages
    if ocr_b_font_path() is None:
        print("needs the OCR-B font (apt-get install fonts-ocr-b)", file=sys.stderr)
        return 2

    reads: Counter[str] = Counter()
    wrong: list[str] = []
    refusals: Counter[str] = Counter()
    times: list[float] = []
    for number, (name, (options, fmt, quality)) in enumerate(VARIATIONS.items()):
        for index in range(per_variation):
            seed = args.seed + 1000 * number + index
            data, passport = page_bytes(seed, options, fmt, quality)
            truth = passport.lines()
            started = time.perf_counter()
            try:
                result = read_passport_mrz(data, TODAY)
            except InvalidInput as error:
                times.append(time.perf_counter() - started)
                refusals[f"{name}: {error.code}"] += 1
                if args.failures:
                    print(f"{name} seed {seed}: {error.code}\n{describe_failure(data, truth)}")
                continue
            times.append(time.perf_counter() - started)
            if (result.line1, result.line2) == truth:
                reads[name] += 1
            else:
                wrong.append(f"{name} seed {seed}: {result.line1} {result.line2} != {truth}")

    refused_right: Counter[str] = Counter()
    refused_as: Counter[str] = Counter()
    for number, (name, (options, code)) in enumerate(REFUSALS.items()):
        for index in range(max(2, per_variation // 3)):
            seed = args.seed + 100_000 + 1000 * number + index
            data, _ = page_bytes(seed, options, "PNG", 0)
            try:
                read_passport_mrz(data, TODAY)
            except InvalidInput as error:
                refused_as[f"{name}: {error.code}"] += 1
                refused_right[name] += error.code == code
            else:
                refused_as[f"{name}: READ (should be {code})"] += 1

    good = sum(reads[name] for name in GOOD) / (per_variation * len(GOOD))
    overall = sum(reads.values()) / (per_variation * len(VARIATIONS))
    print(f"pages: {per_variation} per variation, seed {args.seed}, today {TODAY}")
    for name in VARIATIONS:
        print(f"  {name:<16} read {reads[name]:>3}/{per_variation}")
    print(f"read rate, good images: {good:.1%}")
    print(f"read rate, overall:     {overall:.1%}")
    print(f"wrong reads:            {len(wrong)} (goal 0)")
    for line in wrong:
        print(f"  WRONG {line}")
    ratio = good / GOAL_GOOD_READ_RATE
    print(f"goal: >= {GOAL_GOOD_READ_RATE:.0%} on good images; ratio {ratio:.2f}x")
    quantiles = statistics.quantiles(times, n=100, method="inclusive")
    print(f"time per image: p50 {statistics.median(times):.3f} s, p99 {quantiles[98]:.3f} s")
    print("refusals of readable variations:")
    for key, count in sorted(refusals.items()):
        print(f"  {key}: {count}")
    print("spoiled pages, refused with their own code:")
    for name, (_, code) in REFUSALS.items():
        total = max(2, per_variation // 3)
        print(f"  {name:<10} {refused_right[name]}/{total} as {code}")
    for key, count in sorted(refused_as.items()):
        print(f"    {key}: {count}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
