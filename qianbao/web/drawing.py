"""Codes drawn on the server as inline SVG (no image service, no network): QR codes
(``qrcode``) and Code 128 barcodes (``python-barcode`` encodes, this draws). Drawn with
presentation attributes only, never ``style``, so the pages' CSP holds."""

from __future__ import annotations

import re
from typing import Final

import barcode
import qrcode
import qrcode.image.svg
from markupsafe import Markup, escape

QR_PIXELS: Final = 240
# Code 128 asks for a quiet zone of at least ten modules on each side.
QUIET_MODULES: Final = 10
BAR_HEIGHT_MODULES: Final = 60
# The figure's caption and the text beside it say what the code is.
DECORATIVE: Final = 'aria-hidden="true" focusable="false"'


def qr_svg(text: str, pixels: int = QR_PIXELS) -> Markup:
    """``text`` as a QR code, ``pixels`` square (240: large enough for a phone's camera
    across a table)."""
    image = qrcode.make(
        text,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
    )
    svg = re.sub(
        r'^<svg width="[^"]*" height="[^"]*"',
        f'<svg width="{pixels}" height="{pixels}" class="qr" {DECORATIVE}',
        image.to_string(encoding="unicode"),
    )
    return Markup(svg)  # noqa: S704 - drawn here from text we made; no markup from anyone


def code128_modules(text: str) -> str:
    """The symbol as modules, "1" dark and "0" light, start, check and stop included
    (the library picks code set C for digits: two per symbol)."""
    return str(barcode.Code128(text).build()[0])


def code128_svg(text: str) -> Markup:
    """``text`` as a Code 128 barcode: one rectangle per bar, scaled by its viewBox."""
    modules = code128_modules(text)
    width = len(modules) + 2 * QUIET_MODULES
    bars = [
        f'<rect x="{QUIET_MODULES + match.start()}" y="0" width="{len(match.group())}" '
        f'height="{BAR_HEIGHT_MODULES}"/>'
        for match in re.finditer("1+", modules)
    ]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="barcode" {DECORATIVE} '
        f'viewBox="0 0 {width} {BAR_HEIGHT_MODULES}" preserveAspectRatio="none" '
        f'data-code="{escape(text)}">'
        f'<rect width="{width}" height="{BAR_HEIGHT_MODULES}" fill="#fff"/>'
        f'<g fill="#000">{"".join(bars)}</g></svg>'
    )
    return Markup(svg)  # noqa: S704 - drawn here from digits we made
