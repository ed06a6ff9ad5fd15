"""Passport zone OCR: read rate and wrong reads on synthetic data pages.

Generates pages with ``tests/verification/passport_pages.py`` (OCR-B zone, valid check
digits, fixed seeds) across five variations, reads each with
``qianbao.verification.ocr.read_passport_mrz`` and prints the read rate on good images
and overall, the wrong reads (a read that parsed but differs from the truth: the goal is
0), the ratio to the goal (read rate >= 95% on good images), and p50/p99 time per image.

    .venv/bin/python bench/mrz_read_rate.py            # 100 pages
    .venv/bin/python bench/mrz_read_rate.py --quick    # 20 pages

Needs the ``tesseract`` binary with the Latin script model and the OCR-B font
(``apt-get install tesseract-ocr tesseract-ocr-script-latn fonts-ocr-b``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qianbao.errors import InvalidInput
from qianbao.verification.ocr import read_passport_mrz
from tests.verification.passport_pages import (
    TODAY,
    encode,
    ocr_b_font_path,
    random_passport,
    render_page,
)

# name: (render options, image format, JPEG quality)
VARIATIONS: dict[str, tuple[dict[str, float], str, int]] = {
    "good": ({}, "PNG", 0),
    "slightly dark": ({"brightness": 0.6}, "PNG", 0),
    "slight blur": ({"blur": 1.0}, "PNG", 0),
    "rotation ±2°": ({"rotation": 2.0}, "PNG", 0),
    "JPEG 60": ({}, "JPEG", 60),
}
GOAL_GOOD_READ_RATE = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 pages")
    parser.add_argument("--seed", type=int, default=9303)
    args = parser.parse_args()
    pages = 20 if args.quick else args.pages
    if shutil.which("tesseract") is None or ocr_b_font_path() is None:
        print("needs tesseract and the OCR-B font (fonts-ocr-b)", file=sys.stderr)
        return 2

    names = list(VARIATIONS)
    reads: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    wrong: list[str] = []
    refusals: Counter[str] = Counter()
    times: list[float] = []
    for index in range(pages):
        seed = args.seed + index
        name = names[index % len(names)]
        options, fmt, quality = VARIATIONS[name]
        if name.startswith("rotation"):
            options = {"rotation": 2.0 if index // len(names) % 2 == 0 else -2.0}
        passport = random_passport(random.Random(seed))
        page = render_page(
            passport,
            brightness=options.get("brightness", 1.0),
            blur=options.get("blur", 0.0),
            rotation=options.get("rotation", 0.0),
            seed=seed,
        )
        data = encode(page, fmt, quality or 90)
        truth = passport.lines()
        started = time.perf_counter()
        try:
            result = read_passport_mrz(data, TODAY)
        except InvalidInput as error:
            refusals[f"{name}: {error.code}"] += 1
        else:
            if (result.line1, result.line2) == truth:
                reads[name] += 1
            else:
                wrong.append(f"{name} seed {seed}: {result.line1} {result.line2} != {truth}")
        times.append(time.perf_counter() - started)
        totals[name] += 1

    good_rate = reads["good"] / totals["good"] if totals["good"] else 0.0
    overall = sum(reads.values()) / pages
    print(f"pages: {pages} (seeds {args.seed}..{args.seed + pages - 1}), today {TODAY}")
    for name in names:
        print(f"  {name:<14} read {reads[name]:>3}/{totals[name]:<3}")
    print(f"read rate, good images: {good_rate:.1%}")
    print(f"read rate, overall:     {overall:.1%}")
    print(f"wrong reads:            {len(wrong)} (goal 0)")
    for line in wrong:
        print(f"  WRONG {line}")
    ratio = good_rate / GOAL_GOOD_READ_RATE
    print(f"goal: >= {GOAL_GOOD_READ_RATE:.0%} on good images; ratio {ratio:.2f}x")
    quantiles = statistics.quantiles(times, n=100, method="inclusive")
    print(f"time per image: p50 {statistics.median(times):.2f} s, p99 {quantiles[98]:.2f} s")
    print("refusals:")
    for key, count in sorted(refusals.items()):
        print(f"  {key}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
