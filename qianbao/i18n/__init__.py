"""English and Simplified Chinese, through gettext catalogs.

The catalogs are kept as ``.po`` files only and compiled in memory when first used,
so a fresh checkout needs no build step. The language of the work in progress is a
context variable: middleware sets it for each request, jobs set it per message.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

Language = Literal["en", "zh_Hans"]
LANGUAGES: tuple[Language, ...] = ("en", "zh_Hans")
LANGUAGE_NAMES: Mapping[Language, str] = {"en": "English", "zh_Hans": "简体中文"}
HTML_LANG: Mapping[Language, str] = {"en": "en", "zh_Hans": "zh-Hans"}
CATALOG_DIR = Path(__file__).parent
DOMAIN = "messages"

_current: ContextVar[Language] = ContextVar("qianbao_language", default="en")


@cache
def translations(language: Language) -> gettext.NullTranslations:
    po_file = CATALOG_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_file.exists():
        return gettext.NullTranslations()
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def current_language() -> Language:
    return _current.get()


def set_language(language: Language) -> None:
    _current.set(language)


@contextmanager
def language_scope(language: Language) -> Iterator[None]:
    token = _current.set(language)
    try:
        yield
    finally:
        _current.reset(token)


def gettext_(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def translate(message: str, params: Mapping[str, object] | None = None) -> str:
    """Translate ``message`` into the current language and fill in its ``{fields}``."""
    text = gettext_(message)
    return text.format(**params) if params else text


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Marks a string for extraction; it is translated later, when shown."""
    return message


def parse_language(value: str | None) -> Language | None:
    """Map a cookie value or a language tag (``zh-CN``, ``zh-Hans``, ``en-GB``) to ours."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        # Traditional-script tags get Simplified Chinese, the only Chinese we have;
        # it is closer to what they asked for than English.
        return "zh_Hans"
    if tag.startswith("en"):
        return "en"
    return None


def negotiate(accept_language: str | None) -> Language | None:
    """The best of our languages for an ``Accept-Language`` header, by q-value."""
    if not accept_language:
        return None
    choices: list[tuple[float, int, Language]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = parse_language(tag)
        if language and quality > 0:
            choices.append((-quality, position, language))
    return sorted(choices)[0][2] if choices else None
