"""Real face photos that ship inside packages, for the face tests and bench/face_match.py.

Nothing is downloaded at run time. The sources:

- scikit-image's ``data.astronaut()`` (Eileen Collins) and matplotlib's
  ``grace_hopper.jpg`` sample: installed with the dev extras;
- two source distributions that ``make install`` fetches into ``var/testdata`` (they are
  never installed, only read with ``tarfile``):

  - ``face_recognition-1.3.0.tar.gz``, ``tests/test_images``: three different photos of
    Barack Obama (``obama.jpg``, ``obama2.jpg``, ``obama3.jpg``) and one of Joe Biden.
    ``32bit.png`` is ``obama2.jpg`` again and ``obama_partial_face*.jpg`` are crops of
    ``obama.jpg``: they are left out, since a pair made from one photo says nothing
    about recognising a person across photos.
  - ``insightface-0.7.3.tar.gz``, ``insightface/data/images``: ``Tom_Hanks_54745.png``
    (a 112 x 112 aligned face) and ``t1.jpg``, a group photo of six people, cut here
    into one photo per person (the ``mask_*.jpg`` files show face masks, no faces).

scikit-image's ``data.lfw_subset()`` is not used: its faces are 25 x 25 pixels, which
dlib's detector does not find at all without upsampling four times, and it carries no
names, so it gives no pairs.
"""

from __future__ import annotations

import io
import tarfile
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA_DIR = REPO_ROOT / "var" / "testdata"
FACE_RECOGNITION_SDIST = TESTDATA_DIR / "face_recognition-1.3.0.tar.gz"
INSIGHTFACE_SDIST = TESTDATA_DIR / "insightface-0.7.3.tar.gz"
FETCH_COMMAND = (
    "pip download --no-deps --no-binary face_recognition,insightface --require-hashes "
    "-r requirements/testdata.txt -d var/testdata"
)

# The six people in insightface's t1.jpg, left to right: (left, top, right, bottom) of a
# generous box around each face, from a detection run, widened by about half a face.
T1_PEOPLE = (
    (15, 230, 225, 440),
    (230, 130, 410, 310),
    (390, 235, 640, 490),
    (680, 310, 895, 525),
    (830, 30, 1045, 250),
    (1060, 230, 1270, 440),
)


class LabelledFace(NamedTuple):
    identity: str
    source: str  # where the photo comes from, for reports
    image: Image.Image


def missing_testdata() -> str | None:
    """Why the sdist photos are unavailable (for ``pytest.skip``), or ``None``."""
    tarballs = (FACE_RECOGNITION_SDIST, INSIGHTFACE_SDIST)
    missing = [path.name for path in tarballs if not path.is_file()]
    if missing:
        return f"test photos missing in var/testdata ({', '.join(missing)}): run {FETCH_COMMAND}"
    return None


def _from_tarball(tarball: Path, member: str) -> Image.Image:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise FileNotFoundError(f"{member} in {tarball.name}")
        image = Image.open(io.BytesIO(handle.read()))
        return ImageOps.exif_transpose(image).convert("RGB")


def face_recognition_photo(name: str) -> Image.Image:
    """A photo from face_recognition's ``tests/test_images`` (``obama.jpg``...)."""
    return _from_tarball(FACE_RECOGNITION_SDIST, f"face_recognition-1.3.0/tests/test_images/{name}")


def insightface_photo(name: str) -> Image.Image:
    """A photo from insightface's ``insightface/data/images`` (``t1.jpg``...)."""
    return _from_tarball(INSIGHTFACE_SDIST, f"insightface-0.7.3/insightface/data/images/{name}")


@cache
def astronaut() -> Image.Image:
    from skimage import data

    samples: Any = data  # scikit-image's data functions are untyped
    return Image.fromarray(samples.astronaut()).convert("RGB")


@cache
def grace_hopper() -> Image.Image:
    from matplotlib import cbook

    path: Any = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as photo:
        return photo.convert("RGB")


def group_photo() -> Image.Image:
    """insightface's ``t1.jpg``: six people around a table."""
    return insightface_photo("t1.jpg")


def packaged_faces() -> list[LabelledFace]:
    """The photos that need no download (one per person, so no genuine pairs)."""
    return [
        LabelledFace("eileen_collins", "skimage data.astronaut()", astronaut()),
        LabelledFace("grace_hopper", "matplotlib grace_hopper.jpg", grace_hopper()),
    ]


@cache
def labelled_faces() -> list[LabelledFace]:
    """Every usable photo, one face each, with the person's label. Needs var/testdata."""
    faces = packaged_faces()
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
        photo = face_recognition_photo(name)
        faces.append(LabelledFace("barack_obama", f"face_recognition {name}", photo))
    biden = face_recognition_photo("biden.jpg")
    faces.append(LabelledFace("joe_biden", "face_recognition biden.jpg", biden))
    hanks = insightface_photo("Tom_Hanks_54745.png")
    faces.append(LabelledFace("tom_hanks", "insightface Tom_Hanks_54745.png", hanks))
    group = group_photo()
    for number, box in enumerate(T1_PEOPLE, start=1):
        person = group.crop(box)
        faces.append(LabelledFace(f"t1_person_{number}", f"insightface t1.jpg #{number}", person))
    return faces
