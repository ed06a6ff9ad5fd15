"""The catalogs against the source, and the language helpers.

Extraction runs in-process with the mapping in ``babel.cfg``, the same one that
``make i18n-extract`` uses, so a string marked in the code or a template but not yet
translated fails here rather than showing up in English on a Chinese page.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from qianbao.i18n import (
    CATALOG_DIR,
    DOMAIN,
    LANGUAGES,
    Language,
    language_scope,
    negotiate,
    parse_language,
    translate,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "qianbao"
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
FIX = "Run `make i18n-extract`, then translate the new entries in {path}."
FIX_EN = "Run `make i18n-extract` (English is the source: its msgstrs stay empty)."

MsgId = str | tuple[str, ...]


def _ids(message_id: MsgId) -> tuple[str, ...]:
    return (message_id,) if isinstance(message_id, str) else tuple(message_id)


def _key(message_id: MsgId) -> str:
    """The singular form: what a catalog is keyed by."""
    return _ids(message_id)[0]


def _in_package(dirpath: str) -> bool:
    relative = Path(dirpath).relative_to(ROOT)
    return relative.parts[0] == PACKAGE.name and not any(
        part.startswith((".", "_")) for part in relative.parts
    )


@cache
def extracted() -> dict[str, MsgId]:
    """Every marked string in the package, keyed by its singular msgid."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, MsgId] = {}
    for _filename, _lineno, message_id, _comments, context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS, directory_filter=_in_package
    ):
        assert context is None, f"message contexts are not used: {message_id!r}"
        found[_key(message_id)] = message_id
    return found


def catalog_path(language: Language) -> Path:
    return CATALOG_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalog(language: Language) -> Catalog:
    path = catalog_path(language)
    assert path.exists(), f"{path} is missing. {FIX.format(path=path)}"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def placeholders(text: str) -> set[str]:
    """The ``{fields}`` of a brace-format string."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def listing(items: Iterable[str]) -> str:
    return "\n".join(f"  - {item!r}" for item in sorted(items))


def entries(language: Language) -> list[Message]:
    return [message for message in catalog(language) if message.id]


def test_extraction_finds_python_and_template_strings() -> None:
    found = extracted()
    assert "Unverified" in found  # N_() in Python
    assert "Log out" in found  # _() in a Jinja template
    assert len(found) > 50


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_every_source_string(language: Language) -> None:
    known = {_key(message.id) for message in entries(language)}
    missing = sorted(extracted().keys() - known)
    assert not missing, (
        f"{len(missing)} msgid(s) in the source are not in the {language} catalog:\n"
        f"{listing(missing)}\n"
        + (FIX_EN if language == "en" else FIX.format(path=catalog_path(language)))
    )


def test_no_untranslated_chinese_string() -> None:
    """Walk the zh_Hans catalog: every source string has a real, finished translation."""
    messages = {_key(message.id): message for message in entries("zh_Hans")}
    untranslated: list[str] = []
    for key in sorted(extracted()):
        message = messages.get(key)
        strings = _ids(message.string) if message else ()
        if message is None or message.fuzzy or not all(s.strip() for s in strings):
            untranslated.append(key)
    assert not untranslated, (
        f"{len(untranslated)} msgid(s) have no (or only a fuzzy) Chinese translation:\n"
        f"{listing(untranslated)}\n{FIX.format(path=catalog_path('zh_Hans'))}"
    )


def test_chinese_translations_keep_placeholders() -> None:
    wrong: list[str] = []
    for message in entries("zh_Hans"):
        wanted = set().union(*(placeholders(text) for text in _ids(message.id)))
        for text in _ids(message.string):
            if text and placeholders(text) != wanted:
                wrong.append(f"{message.id!r} -> {text!r}")
            # Jinja's newstyle gettext applies ``%`` to every string it translates.
            if "%" in text and not any("%" in source for source in _ids(message.id)):
                wrong.append(f"{message.id!r} -> {text!r} (stray %)")
    assert not wrong, "translations whose {placeholders} differ from the msgid:\n" + "\n".join(
        f"  - {line}" for line in wrong
    )


def test_chinese_catalog_header() -> None:
    zh = catalog("zh_Hans")
    assert str(zh.locale) == "zh_Hans"
    assert zh.plural_forms == "nplurals=1; plural=0;"
    assert not zh.fuzzy


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_obsolete_entries(language: Language) -> None:
    po = catalog(language)
    stale = {_key(message.id) for message in entries(language)} - extracted().keys()
    obsolete = {_key(message_id) for message_id in po.obsolete}
    assert not stale | obsolete, (
        f"the {language} catalog has entries no longer in the source:\n"
        f"{listing(stale | obsolete)}\n"
        f"Run `make i18n-extract` (it drops them) and review {catalog_path(language)}."
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_Hans"),
        ("en-GB", "en"),
        ("fr-FR", None),
        ("fr, zh-TW;q=0.5", "zh_Hans"),
        ("en;q=0, zh;q=0.1", "zh_Hans"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh;q=0.5, en;q=0.5", "zh_Hans"),
        ("en;q=oops, zh;q=0.2", "zh_Hans"),
        ("", None),
        (None, None),
    ],
)
def test_negotiate(header: str | None, expected: Language | None) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zh-CN", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("zh-Hant-TW", "zh_Hans"),
        (" EN-gb ", "en"),
        ("en", "en"),
        ("fr-FR", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_language(value: str | None, expected: Language | None) -> None:
    assert parse_language(value) == expected


def test_translate_in_chinese() -> None:
    number = "+60 12-345 6789"
    with language_scope("en"):
        with language_scope("zh_Hans"):
            assert translate("Unverified") == "未认证"
            assert translate("Verified") == "已认证"
            assert translate("Real-name verification") == "实名认证"
            sent = translate(
                "Enter the {length}-digit code sent to {number}",
                {"length": 6, "number": number},
            )
        assert translate("Unverified") == "Unverified"  # back to the outer scope
    assert number in sent
    assert "6" in sent.replace(number, "")
    assert "{" not in sent
    assert "验证码" in sent


def test_translate_in_english_fills_placeholders() -> None:
    with language_scope("en"):
        assert translate("Held: {amount}", {"amount": "+44 7911 123456"}) == (
            "Held: +44 7911 123456"
        )
