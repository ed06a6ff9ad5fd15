"""Comparing the face on a passport with a selfie: detection, portrait cut-out, embedding.

Everything runs on dlib, with weights from the ``face_recognition_models`` package:

- **Detection**: dlib's HOG frontal face detector (built into dlib, no weights file).
  Its sliding window is 80 x 80 pixels, so it finds faces about 80 pixels wide and
  larger. A photo is first shrunk so that its longer side is at most
  :data:`DETECTION_MAX_SIDE` (a phone photo of 4000 pixels would cost ~40x a selfie
  frame and gains nothing: its face is hundreds of pixels wide). Only when nothing is
  found, and the shrunk image is at most :data:`UPSAMPLE_MAX_PIXELS`, is it searched
  again at twice the size (faces down to ~40 pixels: the portrait on a photographed
  passport page can be that small). Most photos are thus searched once, at the cheap
  scale. A consequence: in a photo with a large face, faces under ~80 pixels (at the
  shrunk scale) are not counted.
- **Landmarks**: ``shape_predictor_5_face_landmarks.dat`` (eye corners and nose), used
  only to align the face before embedding. The 68-point model is never loaded: its
  training data (iBUG 300-W) forbids commercial use. Nor is the CNN (mmod) detector.
- **Embedding**: ``dlib_face_recognition_resnet_model_v1.dat`` maps an aligned 150 x 150
  face chip to 128 numbers; two photos of one person lie close together (Euclidean
  distance). dlib reports 99.38% accuracy on LFW at distance 0.6.

:func:`compare` turns a distance into one of three outcomes around a threshold ``T``
with a review margin ``m`` (both settings; the defaults are below)::

    distance <= T - m          "match"     (accepted automatically)
    T - m < distance <= T + m  "review"    (a person in the back office decides)
    distance > T + m           "no_match"  (refused)

So ``T - m`` is the line that the false-match rate depends on, and the band keeps
near misses of either kind away from automatic decisions.

Models load once, on first use, under a lock. dlib releases the GIL while it works,
and its detector and network keep scratch state inside the object, so each is used
under its own lock: two requests can detect and embed at the same time, but not both
detect at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

Role = Literal["selfie", "portrait"]
Outcome = Literal["match", "review", "no_match"]
Embedding = npt.NDArray[np.float64]

EMBEDDING_SIZE: Final = 128
EMBEDDING_DTYPE: Final = np.dtype("<f4")

# From bench/face_match.py (figures in bench/README.md): automatic match at <= 0.40,
# review up to 0.55, refusal above. The 75 impostor pairs of the test photos measured
# 0.638 and more (a normal fit puts FMR 1e-4 near 0.54) and the 3 genuine pairs 0.32-0.42.
# 75 pairs cannot show FMR 1e-4 (NIST SP 800-63A-4's goal; that takes 30,000), so the
# automatic line is set well below both that fit and dlib's own 0.6, which is tuned for
# accuracy on LFW and is known to confuse more East Asian faces: a conservative guess to
# be replaced by a measurement on a large, licensed set of pairs.
DEFAULT_MATCH_THRESHOLD: Final = 0.475
DEFAULT_REVIEW_MARGIN: Final = 0.075

# Detection scales (see the module docstring).
DETECTION_MAX_SIDE: Final = 1280
UPSAMPLE_MAX_PIXELS: Final = 1_400_000

# The passport portrait cut-out, in multiples of the detected face box's width: the
# box covers brows to chin, so the crop adds hair above and neck and shoulders below,
# like the photo printed on the page (ICAO: 35 x 45 mm, face 70-80% of the height).
PORTRAIT_WIDTH_IN_FACES: Final = 2.0
PORTRAIT_ASPECT: Final = 45 / 35  # height / width
PORTRAIT_ABOVE_FACE: Final = 0.30  # share of the crop's height above the box's top
PORTRAIT_HEIGHT: Final = 450  # pixels: the cut-out is scaled to this height

MODEL_FILES: Final = (
    "shape_predictor_5_face_landmarks.dat",
    "dlib_face_recognition_resnet_model_v1.dat",
)


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixels of the image it was found in (right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, eq=False)
class Face:
    """A face and its embedding (128 float numbers; compare with :func:`face_distance`)."""

    box: FaceBox
    embedding: Embedding


@dataclass(frozen=True)
class FaceComparison:
    distance: float
    outcome: Outcome


class _Models:
    """dlib's detector, 5-point landmarks and ResNet, loaded once."""

    def __init__(self) -> None:
        import dlib  # heavy: imported only when faces are first needed

        model_dir = _model_dir()
        landmarks_file, encoder_file = (model_dir / name for name in MODEL_FILES)
        self.detector: Any = dlib.get_frontal_face_detector()
        self.landmarks: Any = dlib.shape_predictor(str(landmarks_file))
        self.encoder: Any = dlib.face_recognition_model_v1(str(encoder_file))
        self.rectangle: Any = dlib.rectangle
        self.detector_lock = threading.Lock()
        self.encoder_lock = threading.Lock()


class _ModelHolder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: _Models | None = None

    def get(self) -> _Models:
        models = self._models
        if models is None:
            with self._lock:
                if self._models is None:
                    self._models = _Models()
                models = self._models
        return models


_holder = _ModelHolder()


def _model_dir() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.__file__).parent / "models"


def load_models() -> None:
    """Load the models now (at start-up) rather than on the first request."""
    _holder.get()


class _WorkingImage:
    """An image shrunk for detection, with the factor back to the original's pixels."""

    def __init__(self, image: Image.Image) -> None:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        longer = max(rgb.size)
        self.scale = min(1.0, DETECTION_MAX_SIDE / longer)
        if self.scale < 1.0:
            size = (round(rgb.width * self.scale), round(rgb.height * self.scale))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        self.image = rgb

    @cached_property
    def pixels(self) -> npt.NDArray[np.uint8]:
        return np.ascontiguousarray(np.asarray(self.image, dtype=np.uint8))

    def to_original(self, rectangle: Any, original_size: tuple[int, int]) -> FaceBox:
        width, height = original_size
        return FaceBox(
            left=max(0, round(rectangle.left() / self.scale)),
            top=max(0, round(rectangle.top() / self.scale)),
            right=min(width, round((rectangle.right() + 1) / self.scale)),
            bottom=min(height, round((rectangle.bottom() + 1) / self.scale)),
        )


def _detect(working: _WorkingImage) -> list[Any]:
    models = _holder.get()
    with models.detector_lock:
        found = list(models.detector(working.pixels, 0))
        if not found and working.image.width * working.image.height <= UPSAMPLE_MAX_PIXELS:
            found = list(models.detector(working.pixels, 1))
    # Largest first: callers that want one face want the most prominent.
    found.sort(key=lambda rectangle: rectangle.area(), reverse=True)
    return found


def find_faces(image: Image.Image) -> list[FaceBox]:
    """The faces in ``image``, largest first, in the image's own pixels."""
    working = _WorkingImage(image)
    return [working.to_original(rectangle, image.size) for rectangle in _detect(working)]


def _embed(working: _WorkingImage, rectangle: Any) -> Embedding:
    models = _holder.get()
    with models.encoder_lock:
        shape = models.landmarks(working.pixels, rectangle)
        descriptor = models.encoder.compute_face_descriptor(working.pixels, shape)
    return np.array(descriptor, dtype=np.float64)


def embed_single_face(image: Image.Image, *, role: Role) -> Face:
    """The one face in ``image`` with its embedding; ``face.none`` / ``face.several``."""
    working = _WorkingImage(image)
    found = _detect(working)
    if not found:
        raise _no_face(role)
    if len(found) > 1:
        raise _several_faces(role, len(found))
    return Face(box=working.to_original(found[0], image.size), embedding=_embed(working, found[0]))


def cut_portrait(page: Image.Image) -> Image.Image:
    """The passport photo cut out of a data page: the page's largest face, head and
    shoulders, scaled to :data:`PORTRAIT_HEIGHT` pixels high. ``passport.no_portrait``."""
    faces = find_faces(page)
    if not faces:
        raise InvalidInput(
            "passport.no_portrait",
            N_(
                "No photo of a face was found on the passport page. Take the picture "
                "again with the whole page flat, in focus and in good light."
            ),
        )
    box = faces[0]
    crop_width = box.width * PORTRAIT_WIDTH_IN_FACES
    crop_height = crop_width * PORTRAIT_ASPECT
    left = (box.left + box.right) / 2 - crop_width / 2
    top = box.top - crop_height * PORTRAIT_ABOVE_FACE
    # Near the page's edge the crop is cut short rather than padded with invented pixels.
    bounds = (
        max(0, round(left)),
        max(0, round(top)),
        min(page.width, round(left + crop_width)),
        min(page.height, round(top + crop_height)),
    )
    portrait = page.convert("RGB").crop(bounds)
    scale = PORTRAIT_HEIGHT / portrait.height
    size = (max(1, round(portrait.width * scale)), PORTRAIT_HEIGHT)
    return portrait.resize(size, Image.Resampling.LANCZOS)


def face_distance(a: Face, b: Face) -> float:
    """Euclidean distance between two embeddings: 0 for the same photo; dlib's model
    puts one person's photos mostly under 0.6 and different people's mostly above."""
    return float(np.linalg.norm(a.embedding - b.embedding))


def compare(
    portrait: Face,
    selfie: Face,
    *,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    review_margin: float = DEFAULT_REVIEW_MARGIN,
) -> FaceComparison:
    """Match, review or no match (see the module docstring for the exact bands)."""
    if review_margin < 0 or match_threshold - review_margin < 0:
        raise ValueError("the review margin must be >= 0 and below the threshold")
    distance = face_distance(portrait, selfie)
    outcome: Outcome
    if distance <= match_threshold - review_margin:
        outcome = "match"
    elif distance <= match_threshold + review_margin:
        outcome = "review"
    else:
        outcome = "no_match"
    return FaceComparison(distance=distance, outcome=outcome)


def embedding_to_bytes(embedding: Embedding) -> bytes:
    """128 float32 little-endian numbers (512 bytes), for sealed storage."""
    values = np.asarray(embedding)
    if values.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"an embedding has {EMBEDDING_SIZE} numbers, not {values.shape}")
    return values.astype(EMBEDDING_DTYPE).tobytes()


def embedding_from_bytes(data: bytes) -> Embedding:
    """The inverse of :func:`embedding_to_bytes` (float32 precision)."""
    expected = EMBEDDING_SIZE * EMBEDDING_DTYPE.itemsize
    if len(data) != expected:
        raise ValueError(f"a stored embedding is {expected} bytes, not {len(data)}")
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).astype(np.float64)


def _no_face(role: Role) -> InvalidInput:
    if role == "portrait":
        message = N_(
            "No face was found in the passport photo. Take the picture of the page again, "
            "flat, in focus and without glare on the photo."
        )
    else:
        message = N_(
            "No face was found in the selfie. Look straight at the camera in good light, "
            "with nothing covering your face, and try again."
        )
    return InvalidInput("face.none", message)


def _several_faces(role: Role, count: int) -> InvalidInput:
    if role == "portrait":
        message = N_(
            "More than one face was found in the passport photo ({count}). Take a picture "
            "of the data page alone."
        )
    else:
        message = N_(
            "More than one face was found in the selfie ({count}). Make sure only you are "
            "in the picture and try again."
        )
    return InvalidInput("face.several", message, {"count": count})
