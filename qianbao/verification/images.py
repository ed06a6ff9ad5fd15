"""Safe intake of uploaded photos (passport data page, selfie).

An upload is untrusted bytes. :func:`decode_upload` checks it in the order that spends
the least on a hostile file:

1. its size in bytes, before anything is parsed;
2. its first bytes (the "magic"): only JPEG, PNG and WebP are accepted, whatever the
   file is called, and Pillow is told to try that one format only, so none of its other
   parsers ever sees the data;
3. its width and height, read from the header alone, against ``max_pixels``: a
   decompression bomb (a small file that claims 20000 x 20000 pixels) is refused before
   any pixel memory is allocated. Pillow's own global limit is not relied on;
4. a full decode, with Pillow's ``LOAD_TRUNCATED_IMAGES`` left off, so that a cut-off
   file fails instead of coming back with its missing part painted grey;
5. its smallest side against ``min_side``.

The result is upright (the EXIF orientation a phone camera writes is applied) and RGB
(transparency is laid on white).
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

# The smallest side, in pixels, below which a photo cannot show a usable face or page.
DEFAULT_MIN_SIDE: Final = 200

_BYTES_PER_MB: Final = 1_000_000
_BYTES_PER_MIB: Final = 1_048_576

# What Pillow may raise while reading a damaged file (it is not consistent about which).
_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name that ``data`` starts like, or ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_upload(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """The uploaded photo as an upright RGB image, or :class:`InvalidInput`.

    Codes: ``image.too_large``, ``image.not_image``, ``image.too_many_pixels``,
    ``image.truncated``, ``image.too_small``.
    """
    if len(data) > max_bytes:
        raise InvalidInput(
            "image.too_large",
            N_("This photo is larger than {limit_mb} MB. Send a smaller photo."),
            {"limit_mb": _megabytes(max_bytes)},
        )
    image_format = sniff_format(data)
    if image_format is None:
        raise InvalidInput(
            "image.not_image",
            N_("This file is not a photo. Send a JPEG, PNG or WebP image."),
        )
    image = _open_header(data, image_format, max_pixels)
    _check_pixel_count(image.size, max_pixels)
    _decode_fully(image)
    upright = _upright(image)
    width, height = upright.size
    if min(width, height) < min_side:
        raise InvalidInput(
            "image.too_small",
            N_(
                "This photo is too small ({width} x {height} pixels). Send a photo at "
                "least {min_side} pixels wide and high."
            ),
            {"width": width, "height": height, "min_side": min_side},
        )
    return _to_rgb(upright)


def _open_header(data: bytes, image_format: str, max_pixels: int) -> Image.Image:
    """Parse the header only: Pillow reads pixels lazily, on ``load()``."""
    try:
        return Image.open(io.BytesIO(data), formats=[image_format])
    except Image.DecompressionBombError:
        # Pillow's global limit fired first (it checks inside ``open``); same refusal.
        raise _too_many_pixels(max_pixels) from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as error:
        # The magic bytes said JPEG/PNG/WebP but the header is broken or cut short.
        raise _truncated() from error


def _check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _truncated()
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels)


def _decode_fully(image: Image.Image) -> None:
    # A truncated file must fail, not be padded: Pillow pads when this global is True.
    # Someone else in the process could have turned it on; refuse to work silently then.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        image.load()
    except _DECODE_ERRORS as error:
        raise _truncated() from error


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # A broken EXIF block says nothing reliable about orientation: keep the pixels.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _megabytes(byte_count: int) -> str:
    """The limit as people say it: 10 MiB and 10,000,000 bytes are both "10 MB"."""
    if byte_count % _BYTES_PER_MIB == 0:
        return str(byte_count // _BYTES_PER_MIB)
    return f"{round(byte_count / _BYTES_PER_MB, 1):g}"


def _too_many_pixels(max_pixels: int) -> InvalidInput:
    return InvalidInput(
        "image.too_many_pixels",
        N_(
            "This photo has too many pixels (more than {limit_megapixels} megapixels). "
            "Send a smaller photo."
        ),
        {"limit_megapixels": f"{max_pixels / 1_000_000:g}"},
    )


def _truncated() -> InvalidInput:
    return InvalidInput(
        "image.truncated",
        N_("This photo is damaged or incomplete. Take it again or send it again."),
    )
