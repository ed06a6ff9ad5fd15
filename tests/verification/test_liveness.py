"""Liveness: synthetic challenge performances pass, spoofs fail with their reasons.

The performances are warped still photos (see ``liveness_clips``); they prove that the
checks read what they are meant to read, not that a real person's clip passes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.verification import liveness
from tests.verification import liveness_clips as clips

# (photo, challenge): the Grace Hopper photo wears glasses, and warping her lids does
# not read as a blink (eyeBlink stays under 0.25), so her clips use the other actions.
GENUINE = [
    ("astronaut", ("turn_left", "blink")),
    ("grace_hopper", ("smile", "turn_right")),
    ("astronaut_mirrored", ("turn_right", "turn_left")),
    ("grace_hopper_mirrored", ("turn_left", "smile")),
    ("astronaut", ("blink", "turn_right")),
]


@pytest.fixture(scope="module")
def genuine_clips() -> dict[tuple[str, tuple[str, str]], list[Image.Image]]:
    rng = random.Random(7)
    return {
        (photo, challenge): clips.performance(photo, challenge, rng) for photo, challenge in GENUINE
    }


@pytest.fixture(scope="module")
def turn_then_smile() -> list[Image.Image]:
    return clips.performance("astronaut", ("turn_left", "smile"), random.Random(11))


@pytest.mark.parametrize(("photo", "challenge"), GENUINE)
def test_genuine_performance_passes(
    genuine_clips: dict[tuple[str, tuple[str, str]], list[Image.Image]],
    photo: str,
    challenge: tuple[str, str],
) -> None:
    frames = genuine_clips[(photo, challenge)]
    result = liveness.check_liveness(frames, challenge)
    assert result.passed, (result.reason, result.yaw, result.blink, result.smile)
    assert result.reason is None and result.message is None
    assert len(result.yaw) == len(frames)
    # The frame kept for the face comparison looks straight ahead, eyes open, mouth neutral.
    frontal = result.frontal_index
    assert abs(result.yaw[frontal]) < 5
    assert result.blink[frontal] < liveness.BLINK_OPEN
    assert result.smile[frontal] < liveness.SMILE_NEUTRAL
    assert result.flat_residual is not None and result.flat_residual > liveness.FLAT_MAX_RESIDUAL


def test_turns_read_in_the_persons_direction(
    genuine_clips: dict[tuple[str, tuple[str, str]], list[Image.Image]],
) -> None:
    result = liveness.check_liveness(
        genuine_clips[("astronaut_mirrored", ("turn_right", "turn_left"))],
        ("turn_right", "turn_left"),
    )
    # Right first: the yaw goes negative (the person's right), then positive.
    most_right = result.yaw.index(min(result.yaw))
    most_left = result.yaw.index(max(result.yaw))
    assert (
        min(result.yaw)
        <= -liveness.TURN_YAW_DEGREES
        <= liveness.TURN_YAW_DEGREES
        <= max(result.yaw)
    )
    assert most_right < most_left


def test_same_performance_for_the_reversed_challenge_is_wrong_order(
    turn_then_smile: list[Image.Image],
) -> None:
    result = liveness.check_liveness(turn_then_smile, ("smile", "turn_left"))
    assert result.reason == "liveness.wrong_order"
    assert result.params == {"first": "smile", "second": "turn_left"}


def test_performance_of_other_actions_misses_an_action(
    turn_then_smile: list[Image.Image],
) -> None:
    result = liveness.check_liveness(turn_then_smile, ("turn_left", "blink"))
    assert (result.reason, result.params) == ("liveness.action_missing", {"action": "blink"})
    assert result.message == liveness.ACTION_MISSING_MESSAGES["blink"]
    error = result.error()
    assert isinstance(error, InvalidInput)
    assert error.code == "liveness.action_missing" and error.status == 422


def test_replayed_other_challenge_fails() -> None:
    rng = random.Random(5)
    challenge = ("turn_right", "smile")
    frames = clips.replayed_other_challenge("grace_hopper", challenge, rng)
    result = liveness.check_liveness(frames, challenge)
    assert result.reason in {"liveness.action_missing", "liveness.wrong_order"}


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_still_photo_fails_as_still(photo: str) -> None:
    result = liveness.check_liveness(clips.still_photo(photo, 16), ("turn_left", "blink"))
    assert result.reason == "liveness.still"


def test_passport_portrait_held_up_fails_as_still() -> None:
    result = liveness.check_liveness(clips.passport_portrait_still(16), ("smile", "turn_left"))
    assert result.reason == "liveness.still"


@pytest.mark.parametrize(
    ("photo", "challenge"),
    [
        ("astronaut", ("turn_left", "turn_right")),
        ("grace_hopper_mirrored", ("turn_right", "blink")),
    ],
)
def test_flat_photo_turned_fails_as_flat(photo: str, challenge: tuple[str, str]) -> None:
    result = liveness.check_liveness(clips.flat_photo_rotated(photo), challenge)
    assert result.reason == "liveness.flat_face"
    assert result.flat_residual is not None and result.flat_residual < liveness.FLAT_MAX_RESIDUAL


def test_looped_clip_fails_as_repeated(turn_then_smile: list[Image.Image]) -> None:
    result = liveness.check_liveness(clips.looped_clip(turn_then_smile), ("turn_left", "smile"))
    assert result.reason == "liveness.repeated_frames"


def test_too_few_and_too_many_frames(turn_then_smile: list[Image.Image]) -> None:
    few = liveness.check_liveness(turn_then_smile[:7], ("turn_left", "smile"))
    assert few.reason == "liveness.too_few_frames" and few.frontal_index == -1
    many = liveness.check_liveness(turn_then_smile * 3, ("turn_left", "smile"))
    assert many.reason == "liveness.too_many_frames"


def test_blank_frame_has_no_face(turn_then_smile: list[Image.Image]) -> None:
    frames = list(turn_then_smile)
    frames[4] = Image.new("RGB", clips.FRAME_SIZE, (128, 128, 128))
    result = liveness.check_liveness(frames, ("turn_left", "smile"))
    assert (result.reason, result.params) == ("liveness.no_face", {"frame": "5"})


def test_two_faces_side_by_side(turn_then_smile: list[Image.Image]) -> None:
    pair = Image.new("RGB", clips.FRAME_SIZE)
    left = clips.portrait_named("astronaut").image.crop((160, 0, 480, 480))
    right = clips.portrait_named("grace_hopper").image.crop((160, 0, 480, 480))
    pair.paste(left, (0, 0))
    pair.paste(right, (320, 0))
    frames = [*turn_then_smile[:-1], pair]
    result = liveness.check_liveness(frames, ("turn_left", "smile"))
    assert result.reason == "liveness.several_faces"


def test_face_far_away_is_too_small(turn_then_smile: list[Image.Image]) -> None:
    far = Image.new("RGB", clips.FRAME_SIZE, (120, 120, 120))
    far.paste(turn_then_smile[0].resize((240, 180)), (200, 150))
    frames = [far, *turn_then_smile[1:]]
    result = liveness.check_liveness(frames, ("turn_left", "smile"))
    assert result.reason == "liveness.face_too_small"


def test_unknown_action_is_a_programming_error(turn_then_smile: list[Image.Image]) -> None:
    with pytest.raises(ValueError, match="nod"):
        liveness.check_liveness(turn_then_smile, ("turn_left", "nod"))


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "face_landmarker.task"
    data = bytearray(liveness.default_model_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="SHA-256"):
        liveness.load_landmarker(tampered)


def test_installed_model_matches_the_pinned_digest() -> None:
    landmarker = liveness.load_landmarker(liveness.default_model_path())
    landmarker.close()


def test_new_challenge_draws_every_allowed_pair() -> None:
    rng = random.Random(3)
    drawn = {liveness.new_challenge(rng) for _ in range(2000)}
    allowed = {
        (a, b)
        for a in liveness.ACTIONS
        for b in liveness.ACTIONS
        if a != b and (a in liveness.TURNS or b in liveness.TURNS)
    }
    assert drawn == allowed
    assert len(allowed) == 10
    first, second = liveness.new_challenge()
    assert first != second and {first, second} & set(liveness.TURNS)


def test_every_refusal_has_a_message() -> None:
    for reason, message in liveness.MESSAGES.items():
        assert reason.startswith("liveness.") and message.endswith(".")
    assert set(liveness.ACTION_MISSING_MESSAGES) == set(liveness.ACTIONS)
