"""English and Simplified Chinese for the shop, from its own gettext catalog.

The catalog is a ``.po`` file compiled in memory on first use (no build step). The shop
chooses the language from its ``lang`` cookie, else the browser's Accept-Language.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final, Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

Language = Literal["en", "zh_Hans"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "zh_Hans")
LANGUAGE_NAMES: Final[Mapping[Language, str]] = {"en": "English", "zh_Hans": "简体中文"}
HTML_LANG: Final[Mapping[Language, str]] = {"en": "en", "zh_Hans": "zh-Hans"}
CATALOG_DIR: Final = Path(__file__).parent / "i18n"


@cache
def translations(language: Language) -> gettext.NullTranslations:
    po_file = CATALOG_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po_file.exists():
        return gettext.NullTranslations()
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translate(language: Language, message: str, params: Mapping[str, object] | None = None) -> str:
    text = translations(language).gettext(message)
    return text.format(**params) if params else text


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Marks a string for extraction; it is translated when shown."""
    return message


def parse_language(value: str | None) -> Language | None:
    return next((language for language in LANGUAGES if language == value), None)


def from_accept_language(header: str | None) -> Language:
    """Chinese when the browser puts any Chinese before English, else English."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_Hans"
        if tag.startswith("en"):
            return "en"
    return "en"
