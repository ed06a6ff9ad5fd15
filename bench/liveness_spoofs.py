"""Liveness: how many spoof attempts pass (goal 0), the genuine pass rate, check latency.

Every clip comes from ``tests/verification/liveness_clips.py``: genuine performances are
still photos warped into challenge performances (synthetic, not recordings of people);
spoofs are the same photos sent still, a passport portrait held up, a flat print tilted
left and right, a recording looped, and a recording made for another challenge.

    .venv/bin/python bench/liveness_spoofs.py            # 10 attempts of each kind
    .venv/bin/python bench/liveness_spoofs.py --n 3      # smoke run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qianbao.verification import liveness
from tests.verification import liveness_clips as clips

PHOTOS = ("astronaut", "grace_hopper", "astronaut_mirrored", "grace_hopper_mirrored")
Clip = tuple[list[Image.Image], tuple[str, str]]


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _make(kind: str, attempt: int, rng: random.Random) -> Clip:
    photo = PHOTOS[attempt % len(PHOTOS)]
    challenge = liveness.new_challenge(rng)
    if kind == "still photo":
        return clips.still_photo(photo, rng.randrange(12, 30), seed=attempt), challenge
    if kind == "passport portrait":
        return clips.passport_portrait_still(rng.randrange(12, 30), seed=attempt), challenge
    if kind == "flat photo turned":
        peak = (25.0, 35.0, 45.0, 55.0)[attempt // len(PHOTOS) % 4]
        return clips.flat_photo_rotated(photo, seed=attempt, peak_yaw=peak), challenge
    if kind == "looped clip":
        return clips.looped_clip(clips.performance(photo, challenge, rng)), challenge
    if kind == "other challenge":
        return clips.replayed_other_challenge(photo, challenge, rng), challenge
    return clips.performance(photo, challenge, rng), challenge


def _run(kind: str, n: int, seed: int) -> tuple[int, Counter[str], list[float], list[float]]:
    rng = random.Random(seed)
    passed, reasons, latencies, model_only = 0, Counter[str](), [], []
    for attempt in range(n):
        frames, challenge = _make(kind, attempt, rng)
        started = time.perf_counter()
        result = liveness.check_liveness(frames, challenge)
        latencies.append(time.perf_counter() - started)
        model_only.append(_landmarker_time(frames))
        passed += result.passed
        reasons[result.reason or "passed"] += 1
        if kind == "genuine" and not result.passed:
            reasons[f"  failed: {PHOTOS[attempt % len(PHOTOS)]} {challenge}"] += 1
    return passed, reasons, latencies, model_only


def _landmarker_time(frames: Sequence[Image.Image]) -> float:
    """The reference: the landmarker alone over the same frames."""
    started = time.perf_counter()
    for frame in frames:
        liveness.load_landmarker().detect(frame)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="attempts of each kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    liveness.load_landmarker()
    kinds = (
        "genuine",
        "still photo",
        "passport portrait",
        "flat photo turned",
        "looped clip",
        "other challenge",
    )
    print(f"liveness spoof benchmark: {args.n} clips per kind, seed {args.seed}")
    print(f"{'kind':<20}{'passed':>8}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'x model':>9}  reasons")
    all_latencies: list[float] = []
    for kind in kinds:
        passed, reasons, latencies, model_only = _run(kind, args.n, args.seed)
        all_latencies += latencies
        ratio = statistics.median(a / b for a, b in zip(latencies, model_only, strict=True))
        listed = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        print(
            f"{kind:<20}{passed:>5}/{args.n:<2}{passed / args.n:>8.2f}"
            f"{_percentile(latencies, 0.5) * 1000:>9.0f}{_percentile(latencies, 0.99) * 1000:>9.0f}"
            f"{ratio:>9.2f}  {listed}"
        )
    print(
        f"all clips: check p50 {_percentile(all_latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(all_latencies, 0.99) * 1000:.0f} ms "
        "('x model': check time / the landmarker alone on the same frames)"
    )


if __name__ == "__main__":
    main()
