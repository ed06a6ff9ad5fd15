"""Synthetic passport data pages (ICAO Doc 9303 TD3) for the OCR tests and benchmark.

A page is 1250 x 880 pixels (125 x 88 mm at 10 px/mm, the TD3 size): a light
background with a faint pattern, printed fields in a normal font, a portrait, and the
two lines of the machine-readable zone in OCR-B (Debian's ``fonts-ocr-b``), at the
2.54 mm character pitch of Doc 9303. The check digits come from
:func:`qianbao.verification.mrz.check_digit`, so a page's zone is valid unless a test
breaks it on purpose (``corrupt_check_digit``).

Nothing is downloaded: the portrait is scikit-image's astronaut when ``skimage`` is
installed, a grey rectangle otherwise.
"""

from __future__ import annotations

import glob
import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from qianbao.verification.mrz import check_digit

PAGE_SIZE = (1250, 880)
MRZ_FONT_SIZE = 35  # OCR-B's advance is 0.727 em: 25.4 px, the 2.54 mm pitch at 10 px/mm
MRZ_LEFT = 60
MRZ_TOP = (745, 810)  # the baselines' tops of line 1 and line 2

SURNAMES = (
    "SMITH", "JOHNSON", "NGUYEN", "TAN", "LIM", "MULLER", "MARTIN", "GARCIA",
    "WILLIAMS", "BROWN", "SANTOSO", "WIJAYA", "TRAN", "LEE", "ABDULLAH", "DUBOIS",
    "SCHMIDT", "ONG", "HARRIS", "RAHMAN", "O<BRIEN", "VAN<DER<BERG",
)  # fmt: skip
GIVEN_NAMES = (
    "JANE", "JOHN", "ANNA", "MARIA", "WEI", "MING", "SITI", "AHMAD", "LUCAS", "EMMA",
    "OLIVER", "SOPHIE", "THI<HOA", "VAN<AN", "KAI", "NOOR", "PIERRE", "CLAIRE", "HANS",
)  # fmt: skip
NATIONALITIES = ("GBR", "USA", "D", "MYS", "SGP", "IDN", "VNM", "FRA")
# The day the generated passports are checked on: every generated expiry is after it.
TODAY = date(2026, 3, 15)


@dataclass(frozen=True)
class PassportData:
    surname: str  # zone spelling: fillers between words ("VAN<DER<BERG")
    given_names: str
    nationality: str  # without fillers ("D" for Germany)
    document_number: str  # up to 9 characters
    birth_date: date
    sex: str
    expiry_date: date
    optional_data: str = ""

    def lines(self) -> tuple[str, str]:
        """The two zone lines, check digits computed with ``check_digit``."""
        state = self.nationality.ljust(3, "<")
        line1 = f"P<{state}{self.surname}<<{self.given_names}".ljust(44, "<")[:44]
        number = self.document_number.ljust(9, "<")
        birth = self.birth_date.strftime("%y%m%d")
        expiry = self.expiry_date.strftime("%y%m%d")
        optional = self.optional_data.ljust(14, "<")
        head = number + check_digit(number)
        middle = birth + check_digit(birth)
        optional_check = "<" if not self.optional_data else check_digit(optional)
        tail = expiry + check_digit(expiry) + optional + optional_check
        line2 = head + state + middle + self.sex + tail + check_digit(head + middle + tail)
        assert len(line1) == 44 and len(line2) == 44, (line1, line2)
        return line1, line2


def random_passport(rng: random.Random) -> PassportData:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    digits = "0123456789"
    number = rng.choice(letters) + "".join(rng.choice(letters + digits) for _ in range(1, 9))
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    expiry = TODAY + timedelta(days=rng.randrange(30, 365 * 10))
    optional = "".join(rng.choice(digits) for _ in range(rng.choice((0, 0, 8, 10))))
    given = "<".join(rng.sample(GIVEN_NAMES, rng.choice((1, 1, 2))))
    return PassportData(
        surname=rng.choice(SURNAMES),
        given_names=given,
        nationality=rng.choice(NATIONALITIES),
        document_number=number,
        birth_date=birth,
        sex=rng.choice("MF"),
        expiry_date=expiry,
        optional_data=optional,
    )


@cache
def ocr_b_font_path() -> str | None:
    """The path of OCR-B from Debian's fonts-ocr-b, or ``None`` when it is missing."""
    for pattern in (
        "/usr/share/fonts/**/OCRB.otf",
        "/usr/share/fonts/**/OCRB.ttf",
        "/usr/share/fonts/**/*ocr*b*.[ot]tf",
        "/usr/share/fonts/**/*OCR*B*.[ot]tf",
    ):
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return found[0]
    return None


@cache
def _text_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    found = glob.glob(f"/usr/share/fonts/**/{name}", recursive=True)
    if found:
        return ImageFont.truetype(found[0], size)
    return ImageFont.load_default()


@cache
def _portrait() -> Image.Image:
    try:
        from skimage import data

        astronaut = data.astronaut()  # type: ignore[no-untyped-call]
        return Image.fromarray(astronaut).resize((300, 380))
    except ImportError:
        return Image.new("RGB", (300, 380), (150, 150, 150))


def render_page(
    passport: PassportData | None,
    *,
    mrz: tuple[str, str] | None = None,
    brightness: float = 1.0,
    blur: float = 0.0,
    rotation: float = 0.0,
    seed: int = 0,
    perspective: float = 0.0,
    shade: float = 0.0,
    glare: float = 0.0,
    cut_right: float = 0.0,
    noise: float = 0.0,
    margin: int = 0,
) -> Image.Image:
    """A data page as an RGB image.

    ``passport=None`` leaves the page without a zone (and with blank fields); ``mrz``
    prints those lines instead of the passport's own (for broken zones).
    ``brightness`` multiplies the light (1 = as printed), ``blur`` is a Gaussian radius
    in pixels, ``rotation`` is in degrees (counter-clockwise).
    ``perspective`` moves each corner by up to that fraction of the width (a camera not
    square to the page); ``shade`` darkens one side by up to that fraction (uneven
    light); ``glare`` puts a saturated white spot of that radius (in character heights)
    over the zone; ``cut_right`` crops that fraction of the width off the right (the
    page cut off); ``noise`` is the sigma of Gaussian sensor noise (0-255);
    ``margin`` surrounds the page with that many pixels of dark table.
    """
    rng = random.Random(seed)
    width, height = PAGE_SIZE
    tint = (rng.randrange(225, 245), rng.randrange(228, 248), rng.randrange(215, 240))
    page = Image.new("RGB", PAGE_SIZE, tint)
    draw = ImageDraw.Draw(page)
    # A faint guilloche-like background: light wavy lines across the page.
    for y in range(0, height, 14):
        offset = rng.randrange(0, 40)
        points = [(x, y + 5 * ((x + offset) // 40 % 2)) for x in range(0, width + 40, 40)]
        draw.line(points, fill=tuple(c - 18 for c in tint), width=1)

    draw.text((60, 30), "PASSPORT", font=_text_font(34, bold=True), fill=(40, 40, 90))
    page.paste(_portrait(), (60, 110))
    label, value = _text_font(16), _text_font(24)
    fields: list[tuple[str, str]] = []
    if passport is not None:
        fields = [
            (
                "Type / Code / Passport No.",
                f"P   {passport.nationality}   {passport.document_number}",
            ),
            ("Surname", passport.surname.replace("<", " ")),
            ("Given names", passport.given_names.replace("<", " ")),
            ("Nationality", passport.nationality),
            ("Date of birth", passport.birth_date.strftime("%d %b %Y").upper()),
            ("Sex", passport.sex),
            ("Date of expiry", passport.expiry_date.strftime("%d %b %Y").upper()),
        ]
    for row, (name, text) in enumerate(fields):
        y = 110 + row * 80
        draw.text((400, y), name, font=label, fill=(90, 90, 110))
        draw.text((400, y + 24), text, font=value, fill=(20, 20, 20))

    lines = mrz if mrz is not None else passport.lines() if passport is not None else None
    if lines is not None:
        font_path = ocr_b_font_path()
        if font_path is None:
            raise RuntimeError("the OCR-B font is missing: apt-get install fonts-ocr-b")
        font = ImageFont.truetype(font_path, MRZ_FONT_SIZE)
        for top, line in zip(MRZ_TOP, lines, strict=True):
            draw.text((MRZ_LEFT, top), line, font=font, fill=(15, 15, 15))

    if margin:
        table = Image.new("RGB", (width + 2 * margin, height + 2 * margin), (60, 50, 45))
        table.paste(page, (margin, margin))
        page, tint = table, (60, 50, 45)
    if rotation:
        page = page.rotate(rotation, resample=Image.Resampling.BICUBIC, fillcolor=tint)
    if perspective:
        page = _perspective(page, perspective, rng, tint)
    if shade:
        page = _shade(page, shade, rng)
    if glare:
        page = _glare(page, glare, rng, offset=margin)
    if blur:
        page = page.filter(ImageFilter.GaussianBlur(blur))
    if brightness != 1.0:
        page = ImageEnhance.Brightness(page).enhance(brightness)
    if noise:
        page = _noise(page, noise, rng)
    if cut_right:
        page = page.crop((0, 0, round(page.width * (1 - cut_right)), page.height))
    return page


def _perspective(
    page: Image.Image, amount: float, rng: random.Random, fill: tuple[int, ...]
) -> Image.Image:
    """``page`` as seen by a camera a little off square: corners moved at random."""
    width, height = page.size
    jitter = amount * width
    # PIL's QUAD transform maps the output's corners to these source points.
    quad = (
        rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter),
        rng.uniform(-jitter, jitter), height + rng.uniform(-jitter, jitter),
        width + rng.uniform(-jitter, jitter), height + rng.uniform(-jitter, jitter),
        width + rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter),
    )  # fmt: skip
    return page.transform(
        page.size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=fill
    )


def _shade(page: Image.Image, amount: float, rng: random.Random) -> Image.Image:
    """``page`` lit unevenly: darker towards a random side, by up to ``amount``."""
    width, height = page.size
    ramp = Image.linear_gradient("L").resize((width, height))
    ramp = ramp.rotate(rng.choice((0, 90, 180, 270)), expand=False)
    dark = Image.new("RGB", page.size, (0, 0, 0))
    mask = ramp.point(lambda value: round(value * amount))
    return Image.composite(dark, page, mask)


def _glare(page: Image.Image, radius: float, rng: random.Random, *, offset: int) -> Image.Image:
    """``page`` with a saturated white spot (a lamp's reflection) over its zone."""
    size = radius * MRZ_FONT_SIZE
    x = rng.uniform(0.25, 0.75) * page.width
    y = offset + (MRZ_TOP[0] + MRZ_TOP[1]) / 2 + MRZ_FONT_SIZE / 2
    spot = page.copy()
    ImageDraw.Draw(spot).ellipse((x - size, y - size, x + size, y + size), fill=(255, 255, 255))
    halo = Image.new("L", page.size, 0)
    ImageDraw.Draw(halo).ellipse((x - size, y - size, x + size, y + size), fill=255)
    halo = halo.filter(ImageFilter.GaussianBlur(size / 6))
    return Image.composite(spot, page, halo)


def _noise(page: Image.Image, sigma: float, rng: random.Random) -> Image.Image:
    """``page`` with Gaussian sensor noise of ``sigma`` (0-255), the same for a seed."""
    generator = np.random.default_rng(rng.randrange(1 << 30))
    pixels = np.asarray(page, dtype=np.float32)
    pixels = pixels + generator.normal(0.0, sigma, pixels.shape[:2]).astype(np.float32)[..., None]
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def encode(page: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    """The page as PNG or JPEG bytes (``quality`` for JPEG only)."""
    buffer = io.BytesIO()
    if fmt.upper() in {"JPEG", "JPG"}:
        page.save(buffer, "JPEG", quality=quality)
    else:
        page.save(buffer, "PNG")
    return buffer.getvalue()


def corrupt_check_digit(line2: str, position: int = 9) -> str:
    """``line2`` with the check digit at 0-based ``position`` made wrong (plus one)."""
    wrong = str((int(line2[position]) + 1) % 10) if line2[position].isdigit() else "1"
    return line2[:position] + wrong + line2[position + 1 :]
