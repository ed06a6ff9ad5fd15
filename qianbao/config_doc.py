"""The configuration reference, docs/configuration.md, generated from ``Settings``.

Every field of ``qianbao.settings.Settings`` is listed with its environment variable, type,
default and meaning. The meaning is the field's ``description=`` if it has one, else the
comment written above it and after it on its line in settings.py (a field with neither,
right under another, shares the comment above that one: one comment often speaks for a
group); the ``# --- title ---`` comments there make the sections. A test regenerates the
page and compares, so the page cannot fall behind the code.

    python -m qianbao.config_doc            # rewrite docs/configuration.md
    python -m qianbao.config_doc --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from qianbao import settings as settings_module
from qianbao.settings import Settings

DOC_PATH: Final = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
PREFIX: Final = "QIANBAO_"
_SECTION: Final = re.compile(r"^#\s*---\s*(.*?)\s*-*\s*$")
_ACRONYMS: Final = {
    "sms": "SMS",
    "ip": "IP",
    "url": "URL",
    "http": "HTTP",
    "smtp": "SMTP",
    "ttl": "TTL",
    "fx": "FX",
    "kib": "KiB",
    "hmac": "HMAC",
    "id": "ID",
}
_INTRO: Final = """\
# Configuration reference

<!-- Generated from qianbao/settings.py by `python -m qianbao.config_doc`; do not edit.
     tests/test_config_doc.py fails when this page is out of date. -->

Every setting is an environment variable with the prefix `QIANBAO_` (or a line of a `.env`
file in the working directory). Lists and dictionaries are written as JSON
(`QIANBAO_TOUR_PASS_REFUSED_PHONE_REGIONS='["CN"]'`). The README's "Configuration"
section explains the main ones; this page lists them all.
"""


@dataclass(frozen=True)
class Entry:
    name: str
    section: str
    annotation: str
    comment: str


def entries(source: str) -> list[Entry]:
    """The fields of class Settings in source order, with their section and comment."""
    lines = source.splitlines()
    comments = _comments(source)
    tree = ast.parse(source)
    found: list[Entry] = []
    group, previous_end = "", 0
    for node in _settings_fields(tree):
        assert isinstance(node.target, ast.Name)
        block = _block_above(lines, comments, node.lineno)
        trailing = comments.get(node.lineno, "")
        if block:
            group = block
        elif node.lineno - 1 != previous_end:
            group = ""  # a blank line ends the group a comment spoke for
        elif not trailing:
            block = group  # "# Uploads: ..." above several fields speaks for them all
        previous_end = node.end_lineno or node.lineno
        found.append(
            Entry(
                name=node.target.id,
                section=_section_above(lines, node.lineno),
                annotation=ast.unparse(node.annotation),
                comment=" ".join(part for part in (block, trailing) if part),
            )
        )
    return found


def _settings_fields(tree: ast.Module) -> Iterator[ast.AnnAssign]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                target = item.target if isinstance(item, ast.AnnAssign) else None
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    assert isinstance(item, ast.AnnAssign)
                    yield item


def _comments(source: str) -> dict[int, str]:
    """Each line's comment, without the ``#``."""
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def _section_above(lines: list[str], lineno: int) -> str:
    for line in reversed(lines[: lineno - 1]):
        match = _SECTION.match(line.strip())
        if match:
            return match.group(1)
    return "General"


def _block_above(lines: list[str], comments: dict[int, str], lineno: int) -> str:
    """The comment lines right above a field, up to a blank line, code or a section title."""
    block: list[str] = []
    number = lineno - 1
    while number >= 1:
        text = lines[number - 1].strip()
        if not text.startswith("#") or _SECTION.match(text):
            break
        block.insert(0, comments.get(number, ""))
        number -= 1
    return " ".join(part for part in block if part)


def render(source: str | None = None) -> str:
    text = source if source is not None else Path(settings_module.__file__).read_text()
    fields = Settings.model_fields
    out = [_INTRO]
    section = None
    for entry in entries(text):
        if entry.name not in fields:
            continue
        if entry.section != section:
            section = entry.section
            out.append(
                f"\n## {section}\n\n| Variable | Type | Default | Meaning |\n|---|---|---|---|"
            )
        out.append(_row(entry, fields[entry.name]))
    return "\n".join(out) + "\n"


def _row(entry: Entry, info: FieldInfo) -> str:
    meaning = info.description or entry.comment or _humanized(entry.name) + "."
    meaning = meaning[:1].upper() + meaning[1:]
    cells = [
        f"`{PREFIX}{entry.name.upper()}`",
        f"`{entry.annotation}`" + _bounds(info),
        _default(info),
        meaning,
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _bounds(info: FieldInfo) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = [
        f"{sign} {getattr(rule, name)}"
        for rule in info.metadata
        for name, sign in signs.items()
        if getattr(rule, name, None) is not None
    ]
    return f" ({', '.join(found)})" if found else ""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value, default=str, ensure_ascii=False)}`"
    return f"`{value}`" if str(value) else "(empty)"


def _humanized(name: str) -> str:
    words = [_ACRONYMS.get(word, word) for word in name.split("_")]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    wanted = render()
    if "--check" in args:
        current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
        if current != wanted:
            print(f"{DOC_PATH} is out of date: run python -m qianbao.config_doc", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(wanted)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
