"""Synthetic liveness clips: challenge performances and spoof attempts, from still photos.

No package ships a video of a person following prompts, so a "performance" is made
from one real photo. The landmarker reads the photo's 478 landmarks with depth; each
frame moves those landmarks (turn = rotate the 3D points about the vertical axis
through the head's centre, blink = upper eyelids onto the lower ones, smile = mouth
corners up and out) and the photo is warped piecewise-affinely over a Delaunay mesh of
the landmarks (plus a ring around the head and the frame's border) to the new
positions. Triangles are painted far to near, so the near side of a turned face covers
the far side. Because the landmarks have depth, a turn has real parallax: the nose
moves against the cheeks. Each frame also gets a little head jitter, a light change and
sensor noise, so no two frames are identical.

This proves that the checks read the geometry and the blendshapes they are meant to;
it is not a recording of a live person (the skin, hair and ears are stretched, not
seen from a new angle).

Spoofs: ``still_photo``, ``passport_portrait_still``, ``flat_photo_rotated`` (a
printed photo tilted about its vertical axis: a homography of the whole picture, eyes
never close), ``looped_clip`` and ``replayed_other_challenge``.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy.spatial import Delaunay  # type: ignore[import-untyped]

from qianbao.verification import liveness

FloatArray = npt.NDArray[np.float64]

FRAME_SIZE = (640, 480)
# The face is scaled to this share of the frame width, like a face inside the oval.
FACE_WIDTH_SHARE = 0.32

# Eyelids, paired from the outer to the inner corner (upper lid point, lower lid point).
RIGHT_EYE_LIDS = ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155))
LEFT_EYE_LIDS = ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382))
# The skin ring just above each upper lid: it follows the lid part of the way.
RIGHT_EYE_FOLD = (247, 30, 29, 27, 28, 56, 190)
LEFT_EYE_FOLD = (467, 260, 259, 257, 258, 286, 414)
RIGHT_IRIS = tuple(range(468, 473))
LEFT_IRIS = tuple(range(473, 478))
MOUTH_CORNERS = (61, 291)
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
    377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


@dataclass(frozen=True)
class Pose:
    """One frame's expression and head position."""

    yaw: float = 0.0  # degrees, positive = the person's left (nose to the image's right)
    blink: float = 0.0  # 0 open .. 1 closed
    smile: float = 0.0  # 0 as photographed .. 1 a broad smile (negative: corners down)
    shift: tuple[float, float] = (0.0, 0.0)  # pixels
    light: float = 1.0


@dataclass(frozen=True)
class Portrait:
    """A photo cropped to the frame size, with its landmarks (pixels, z in x scale)."""

    image: Image.Image
    landmarks: FloatArray
    neutral_smile: float  # the smile amount that makes the mouth read neutral


def photos() -> dict[str, Image.Image]:
    """The real portraits that installed packages ship (and their mirror images)."""
    from matplotlib import cbook
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]
    hopper_path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = Image.open(hopper_path).convert("RGB")
    found = {"astronaut": astronaut, "grace_hopper": hopper}
    for name, image in list(found.items()):
        found[f"{name}_mirrored"] = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return found


def _landmarks(image: Image.Image) -> FloatArray:
    seen = liveness.measure(image)
    if seen.landmarks is None:
        raise ValueError(f"expected one face in the photo, found {seen.faces}")
    return seen.landmarks


@cache
def _portrait(name: str) -> Portrait:
    return portrait(photos()[name])


def portrait_named(name: str) -> Portrait:
    return _portrait(name)


def portrait(photo: Image.Image) -> Portrait:
    """The photo scaled and cropped to 640x480 with the face centred in the oval."""
    points = _landmarks(photo)
    xs, ys = points[:468, 0], points[:468, 1]
    scale = FACE_WIDTH_SHARE * FRAME_SIZE[0] / float(xs.max() - xs.min())
    centre_x, centre_y = (xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2
    # Affine: scale about the face centre, then put the centre mid-frame (a little high).
    tx = FRAME_SIZE[0] / 2 - scale * centre_x
    ty = FRAME_SIZE[1] * 0.47 - scale * centre_y
    matrix = np.array([[scale, 0, tx], [0, scale, ty]], dtype=np.float64)
    pixels = cv2.warpAffine(
        np.asarray(photo), matrix, FRAME_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
    )
    image = Image.fromarray(pixels)
    landmarks = _landmarks(image)
    return Portrait(image, landmarks, _neutral_smile(image, landmarks))


def _neutral_smile(image: Image.Image, landmarks: FloatArray) -> float:
    """A (negative) smile amount that brings a smiling photo's mouth to neutral."""
    for amount in (0.0, -0.3, -0.6, -0.9, -1.2):
        frame = render(image, landmarks, Pose(smile=amount))
        if liveness.measure(frame).smile < liveness.SMILE_NEUTRAL - 0.1:
            return amount
    raise ValueError("could not make the mouth in this photo read as neutral")


# --- moving the landmarks -----------------------------------------------------------


def posed_landmarks(landmarks: FloatArray, pose: Pose) -> FloatArray:
    """The 3D landmarks after the expression, then the head turn and the jitter."""
    moved = landmarks.copy()
    if pose.blink:
        _close_eyes(moved, pose.blink)
    if pose.smile:
        _smile(moved, pose.smile)
    moved = _turn(moved, landmarks, pose.yaw)
    moved[:, 0] += pose.shift[0]
    moved[:, 1] += pose.shift[1]
    return moved


def _close_eyes(points: FloatArray, amount: float) -> None:
    for lids, fold, iris in (
        (RIGHT_EYE_LIDS, RIGHT_EYE_FOLD, RIGHT_IRIS),
        (LEFT_EYE_LIDS, LEFT_EYE_FOLD, LEFT_IRIS),
    ):
        upper = np.array([u for u, _ in lids])
        lower = np.array([v for _, v in lids])
        # The closed lid slightly overlaps the lower lid, so the eye's inside (the
        # white and the iris) collapses under it; the skin above follows most of the way.
        shut = points[lower] - 0.1 * (points[upper] - points[lower])
        travel = amount * (shut - points[upper])
        points[upper] += travel
        points[np.array(fold)] += 0.9 * travel
        iris_target = shut.mean(axis=0)
        points[np.array(iris)] += amount * (iris_target - points[np.array(iris)])


def _smile(points: FloatArray, amount: float) -> None:
    left, right = points[MOUTH_CORNERS[1]], points[MOUTH_CORNERS[0]]
    mouth_width = float(np.linalg.norm(left[:2] - right[:2]))
    centre = (left + right) / 2
    for corner_index in MOUTH_CORNERS:
        corner = points[corner_index].copy()
        outward = np.sign(corner[0] - centre[0])
        move = np.array([outward * 0.12, -0.16, 0.0]) * mouth_width * amount
        # Nearby points (lips, cheek) follow the corner with a Gaussian fall-off.
        distance = np.linalg.norm(points[:468, :2] - corner[:2], axis=1)
        weight = np.exp(-((distance / (0.28 * mouth_width)) ** 2))
        points[:468] += weight[:, None] * move


def _turn(points: FloatArray, reference: FloatArray, yaw_degrees: float) -> FloatArray:
    """Rotate about the vertical axis through the head centre (z = 0 is its depth)."""
    if not yaw_degrees:
        return points
    xs = reference[:468, 0]
    axis_x = float((xs.max() + xs.min()) / 2)
    # MediaPipe's z is negative towards the camera; the head's centre is about half a
    # face width behind the landmarks' zero.
    axis_z = 0.5 * float(xs.max() - xs.min())
    angle = math.radians(yaw_degrees)
    dx, dz = points[:, 0] - axis_x, points[:, 2] - axis_z
    turned = points.copy()
    turned[:, 0] = axis_x + dx * math.cos(angle) - dz * math.sin(angle)
    turned[:, 2] = axis_z + dx * math.sin(angle) + dz * math.cos(angle)
    return turned


# --- warping --------------------------------------------------------------------------


def _mesh_points(landmarks: FloatArray) -> FloatArray:
    """The face landmarks, a ring around the head that turns with it, and the border."""
    face = landmarks[:478]
    oval = landmarks[np.array(FACE_OVAL)]
    centre = oval.mean(axis=0)
    ring = centre + (oval - centre) * np.array([1.35, 1.25, 1.0])
    width = float(face[:, 0].max() - face[:, 0].min())
    ring[:, 2] = 0.35 * width  # hair and ears: behind the face
    w, h = FRAME_SIZE
    border = [(x, y, 0.0) for x in np.linspace(0, w - 1, 6) for y in (0, h - 1)]
    border += [(x, y, 0.0) for x in (0, w - 1) for y in np.linspace(0, h - 1, 5)[1:-1]]
    return np.vstack([face, ring, np.array(border, dtype=np.float64)])


def render(image: Image.Image, landmarks: FloatArray, pose: Pose) -> Image.Image:
    """The photo warped so that its landmarks move to ``pose``."""
    source = _mesh_points(landmarks)
    target = _mesh_points(posed_landmarks(landmarks, pose))
    # The ring around the head turns and moves with the head; the border stays put.
    head_ring = len(FACE_OVAL)
    target[478 : 478 + head_ring] = _turn(source[478 : 478 + head_ring], landmarks, pose.yaw)
    target[478 : 478 + head_ring, :2] += np.array(pose.shift)
    target[478 + head_ring :] = source[478 + head_ring :]
    triangles = Delaunay(source[:, :2]).simplices
    frame = _warp(np.asarray(image), source, target, triangles, pose.light)
    if pose.blink > 0.5:
        frame = _draw_lashes(frame, target, pose.blink)
    return frame


def _warp(
    pixels: npt.NDArray[np.uint8],
    source: FloatArray,
    target: FloatArray,
    triangles: npt.NDArray[np.int32],
    light: float,
) -> Image.Image:
    height, width = pixels.shape[:2]
    # Paint triangle numbers far to near (larger z is further away).
    order = np.argsort(-target[triangles, 2].mean(axis=1))
    owner = np.full((height, width), -1, dtype=np.int32)
    for index in order:
        corners = np.round(target[triangles[index], :2]).astype(np.int32)
        cv2.fillConvexPoly(owner, corners, int(index))
    # Each triangle's affine map from target pixels back to source pixels.
    maps = np.zeros((len(triangles), 2, 3), dtype=np.float64)
    for index, corners in enumerate(triangles):
        maps[index] = cv2.getAffineTransform(
            target[corners, :2].astype(np.float32), source[corners, :2].astype(np.float32)
        )
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    chosen = maps[np.maximum(owner, 0)]
    map_x = chosen[..., 0, 0] * xs + chosen[..., 0, 1] * ys + chosen[..., 0, 2]
    map_y = chosen[..., 1, 0] * xs + chosen[..., 1, 1] * ys + chosen[..., 1, 2]
    map_x[owner < 0], map_y[owner < 0] = xs[owner < 0], ys[owner < 0]
    warped = cv2.remap(
        pixels,
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    lit = np.clip(warped.astype(np.float64) * light, 0, 255)
    return Image.fromarray(lit.astype(np.uint8))


def _draw_lashes(frame: Image.Image, posed: FloatArray, amount: float) -> Image.Image:
    """The dark line of lashes along closed lids (warping alone leaves skin colour).

    Measured on the astronaut: eyeBlink 0.48 without it, 0.54 with it.
    """
    pixels = np.asarray(frame).astype(np.float64)
    drawn = pixels.copy()
    for lids in (RIGHT_EYE_LIDS, LEFT_EYE_LIDS):
        lid = np.round(posed[[upper for upper, _ in lids], :2]).astype(np.int32)
        cv2.polylines(drawn, [lid], False, (40, 30, 30), 2, cv2.LINE_AA)
    layer = cv2.GaussianBlur(drawn, (3, 3), 0)
    mixed = pixels * (1 - amount) + layer * amount
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


def _sensor_noise(frame: Image.Image, rng: random.Random) -> Image.Image:
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 2.0, (*frame.size[::-1], 3))
    pixels = np.clip(np.asarray(frame).astype(np.float64) + noise, 0, 255).astype(np.uint8)
    return jpeg(Image.fromarray(pixels), rng.randrange(80, 93))


def jpeg(frame: Image.Image, quality: int = 85) -> Image.Image:
    """The frame after a JPEG round trip (what the browser uploads)."""
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# --- performances ---------------------------------------------------------------------

# (pose field, peak value, frames ramping up, frames held, frames ramping down)
ACTION_POSES: dict[str, tuple[str, float]] = {
    # The landmarker reads about two thirds of a synthetic turn (the ears and hair only
    # stretch), so 45 degrees here reads as 27-32.
    "turn_left": ("yaw", 45.0),
    "turn_right": ("yaw", -45.0),
    "blink": ("blink", 1.0),
    "smile": ("smile", 1.0),
}


def performance_poses(challenge: Sequence[str], rng: random.Random) -> list[Pose]:
    """Neutral, first action (up, hold, down), neutral, second action, neutral."""
    poses: list[tuple[str, float]] = [("", 0.0)] * 3
    for action in challenge:
        field, peak = ACTION_POSES[action]
        # A blink lasts about 150-300 ms (4 frames); a turn or a smile about a second.
        ramp = [0.5, 1.0, 1.0, 0.5] if field == "blink" else [0.35, 0.7, 1.0, 1.0, 0.7, 0.35]
        poses += [(field, peak * level) for level in ramp]
        poses += [("", 0.0)] * 3
    result = []
    shift = [0.0, 0.0]
    for field, value in poses:
        shift = [s + rng.uniform(-1.5, 1.5) for s in shift]
        result.append(
            Pose(
                yaw=(value if field == "yaw" else 0.0) + rng.uniform(-2.0, 2.0),
                blink=value if field == "blink" else 0.0,
                smile=value if field == "smile" else 0.0,
                shift=(shift[0], shift[1]),
                light=rng.uniform(0.95, 1.05),
            )
        )
    return result


def performance(
    photo: Image.Image | str, challenge: Sequence[str], rng: random.Random
) -> list[Image.Image]:
    """A synthetic clip of the person in ``photo`` doing ``challenge`` in order."""
    face = _portrait(photo) if isinstance(photo, str) else portrait(photo)
    frames = []
    for pose in performance_poses(challenge, rng):
        smile = face.neutral_smile + pose.smile * (1.0 - face.neutral_smile)
        posed = Pose(pose.yaw, pose.blink, smile, pose.shift, pose.light)
        frames.append(_sensor_noise(render(face.image, face.landmarks, posed), rng))
    return frames


# --- spoofs -----------------------------------------------------------------------------


def _frame_of(photo: Image.Image | str) -> Image.Image:
    return _portrait(photo).image if isinstance(photo, str) else portrait(photo).image


def still_photo(photo: Image.Image | str, n: int = 20, seed: int = 0) -> list[Image.Image]:
    """The same photo sent ``n`` times, each copy with its own sensor noise and JPEG."""
    rng = random.Random(seed)
    frame = _frame_of(photo)
    return [_sensor_noise(frame, rng) for _ in range(n)]


def passport_portrait_still(n: int = 20, seed: int = 0) -> list[Image.Image]:
    """The portrait of a passport data page held up to the camera, ``n`` times."""
    from tests.verification.passport_pages import random_passport, render_page

    rng = random.Random(seed)
    page = render_page(random_passport(rng), seed=seed)
    # The top of the portrait render_page pastes at (60, 110), held close to the
    # camera so that the face fills the oval as a live face would.
    card = page.crop((60, 110, 360, 335)).resize((640, 480), Image.Resampling.BICUBIC)
    held = Image.fromarray(np.asarray(card))
    return [_sensor_noise(held, rng) for _ in range(n)]


def _tilted(frame: Image.Image, yaw_degrees: float, shift: tuple[float, float]) -> Image.Image:
    """A flat picture of ``frame`` turned about its vertical centre line, seen by a camera
    with a 600 px focal length from 900 px away (a phone held at arm's length)."""
    width, height = frame.size
    focal, distance = 600.0, 900.0
    angle = math.radians(yaw_degrees)
    corners = np.array([(0, 0), (width, 0), (width, height), (0, height)], dtype=np.float64)
    projected = []
    for x, y in corners:
        dx, dy = x - width / 2, y - height / 2
        # Turning the picture towards its left edge: its right half comes closer.
        x3, z3 = dx * math.cos(angle), distance - dx * math.sin(angle)
        scale = focal / z3 * (distance / focal)
        projected.append((width / 2 + x3 * scale + shift[0], height / 2 + dy * scale + shift[1]))
    homography = cv2.getPerspectiveTransform(
        corners.astype(np.float32), np.array(projected, dtype=np.float32)
    )
    pixels = cv2.warpPerspective(
        np.asarray(frame), homography, (width, height), borderMode=cv2.BORDER_REPLICATE
    )
    return Image.fromarray(pixels)


def flat_photo_rotated(
    photo: Image.Image | str, seed: int = 0, peak_yaw: float = 35.0
) -> list[Image.Image]:
    """A printed photo turned one way, then the other (it cannot blink or smile)."""
    rng = random.Random(seed)
    frame = _frame_of(photo)
    ramp = [0.0, 0.0, 0.0, 0.35, 0.7, 1.0, 1.0, 0.7, 0.35, 0.0, 0.0]
    yaws = [peak_yaw * level for level in ramp] + [-peak_yaw * level for level in ramp]
    clip = []
    for yaw in yaws:
        shift = (rng.uniform(-3, 3), rng.uniform(-3, 3))
        turned = _tilted(frame, yaw + rng.uniform(-1.5, 1.5), shift)
        lit = np.clip(np.asarray(turned).astype(np.float64) * rng.uniform(0.95, 1.05), 0, 255)
        clip.append(_sensor_noise(Image.fromarray(lit.astype(np.uint8)), rng))
    return clip


def looped_clip(frames: Sequence[Image.Image], limit: int = 40) -> list[Image.Image]:
    """A recording played twice in a row (re-encoded), cut to ``limit`` frames."""
    replay = [jpeg(frame, 90) for frame in frames]
    return (list(frames) + replay)[:limit]


def other_challenge(challenge: tuple[str, str], rng: random.Random) -> tuple[str, str]:
    """A challenge whose performance does not also perform ``challenge``."""
    options = [
        (a, b)
        for a in ACTION_POSES
        for b in ACTION_POSES
        if a != b and (a, b) != challenge and (a in TURNS_SET or b in TURNS_SET)
    ]
    return rng.choice(options)


TURNS_SET = frozenset({"turn_left", "turn_right"})


def replayed_other_challenge(
    photo: Image.Image | str, challenge: tuple[str, str], rng: random.Random
) -> list[Image.Image]:
    """A genuine-looking performance recorded for another challenge, sent for this one."""
    return performance(photo, other_challenge(challenge, rng), rng)
