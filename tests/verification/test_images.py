"""Uploaded photos: what is refused (and with which code), and what comes back upright."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from qianbao.errors import InvalidInput
from qianbao.verification.images import decode_upload

MAX_BYTES = 10_000_000
MAX_PIXELS = 40_000_000


def decode(data: bytes, **limits: int) -> Image.Image:
    options = {"max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS, **limits}
    return decode_upload(data, **options)


def refusal(data: bytes, **limits: int) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode(data, **limits)
    return caught.value


def two_colour_image(size: tuple[int, int] = (300, 200)) -> Image.Image:
    """Left half red, right half blue: shows which way an image was turned."""
    image = Image.new("RGB", size, (220, 20, 20))
    image.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    return image


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def huge_png_header(width: int, height: int) -> bytes:
    """A tiny file that claims a huge 1-bit image: the shape of a decompression bomb.

    Only the first row's data is present; a decoder that started on it would allocate
    the whole image first.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    first_row = zlib.compress(b"\x00" + b"\x00" * ((width + 7) // 8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", first_row)
        + png_chunk(b"IEND", b"")
    )


def test_good_jpeg_and_png_come_back_as_rgb_of_the_same_size() -> None:
    photo = two_colour_image()
    for data in (encoded(photo, "JPEG", quality=90), encoded(photo, "PNG")):
        image = decode(data)
        assert image.mode == "RGB"
        assert image.size == (300, 200)
        assert pixel(image, (10, 100))[0] > 180  # red on the left
        assert pixel(image, (290, 100))[2] > 180  # blue on the right


def test_webp_is_accepted() -> None:
    image = decode(encoded(two_colour_image(), "WEBP", quality=90))
    assert image.size == (300, 200)


def test_transparent_png_is_laid_on_white() -> None:
    photo = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    photo.paste((0, 0, 255, 255), (0, 0, 120, 240))
    image = decode(encoded(photo, "PNG"))
    assert image.mode == "RGB"
    assert pixel(image, (200, 100)) == (255, 255, 255)
    assert pixel(image, (20, 100)) == (0, 0, 255)


def test_exif_rotated_jpeg_comes_back_upright() -> None:
    # Orientation 6: the camera held the phone turned; the viewer turns the stored
    # pixels 90° clockwise, so the stored left (red) half ends up on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(two_colour_image(), "JPEG", quality=90, exif=exif.tobytes())
    image = decode(data)
    assert image.size == (200, 300)
    assert pixel(image, (100, 10))[0] > 180  # red at the top
    assert pixel(image, (100, 290))[2] > 180  # blue at the bottom


def test_pdf_is_not_an_image() -> None:
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    error = refusal(pdf)
    assert error.code == "image.not_image"
    assert "JPEG" in error.localized_message()


def test_text_file_named_jpg_is_not_an_image() -> None:
    # The name is never looked at: only the bytes are.
    error = refusal(b"holiday.jpg\nThis is just a text file, not a photo.\n" * 20)
    assert error.code == "image.not_image"


def test_other_image_formats_are_refused() -> None:
    for image_format in ("GIF", "BMP", "TIFF"):
        assert refusal(encoded(two_colour_image(), image_format)).code == "image.not_image"


def test_truncated_jpeg_is_refused_not_padded() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encoded(two_colour_image((800, 600)), "JPEG", quality=95)
    assert refusal(data[: len(data) * 2 // 3]).code == "image.truncated"


def test_jpeg_cut_inside_its_header_is_refused() -> None:
    data = encoded(two_colour_image(), "JPEG", quality=95)
    assert refusal(data[:40]).code == "image.truncated"


def test_truncated_png_is_refused() -> None:
    data = encoded(Image.effect_noise((400, 400), 60).convert("RGB"), "PNG")
    assert refusal(data[: len(data) // 2]).code == "image.truncated"


def test_decompression_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data = huge_png_header(20_000, 20_000)
    assert len(data) < 10_000
    error = refusal(data)
    assert error.code == "image.too_many_pixels"
    assert "40 megapixels" in error.localized_message()


def test_pixel_limit_is_ours_not_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8000 x 8000 = 64 megapixels: under Pillow's default bomb limit (89 M) but over ours,
    # and refused even when Pillow's global check is switched off.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert refusal(huge_png_header(8_000, 8_000)).code == "image.too_many_pixels"
    assert refusal(huge_png_header(20_000, 20_000)).code == "image.too_many_pixels"


def test_upload_over_the_byte_limit_is_refused_before_decoding() -> None:
    thirty_mb = b"\xff\xd8\xff\xe0" + b"\x00" * 30_000_000
    error = refusal(thirty_mb)
    assert error.code == "image.too_large"
    assert error.params == {"limit_mb": "10"}
    assert "10 MB" in error.localized_message()
    # A limit set in MiB reads the same way, not as "10.4858 MB".
    assert refusal(thirty_mb, max_bytes=10 * 1024 * 1024).params == {"limit_mb": "10"}


def test_tiny_image_is_too_small() -> None:
    error = refusal(encoded(two_colour_image((150, 120)), "PNG"))
    assert error.code == "image.too_small"
    assert error.params["min_side"] == 200
    assert decode(encoded(two_colour_image((150, 120)), "PNG"), min_side=100).size == (150, 120)


def test_refuses_to_run_if_truncated_images_were_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode(encoded(two_colour_image(), "PNG"))
