"""docs/configuration.md lists every setting: regenerated from qianbao/settings.py, it
must equal the committed page (run ``python -m qianbao.config_doc`` after adding one)."""

from __future__ import annotations

from qianbao import config_doc
from qianbao.settings import Settings


def test_the_configuration_reference_is_up_to_date() -> None:
    committed = config_doc.DOC_PATH.read_text()
    assert committed == config_doc.render(), "run: python -m qianbao.config_doc"


def test_every_setting_is_in_the_reference_with_its_variable_and_default() -> None:
    page = config_doc.render()
    for name in Settings.model_fields:
        assert f"| `QIANBAO_{name.upper()}` |" in page, name
    assert "| `QIANBAO_SMS_CODE_LENGTH` | `int` (≥ 4, ≤ 8) | `6` |" in page
    assert "| `QIANBAO_DEMO` | `bool` | `false` |" in page


def test_the_comments_above_a_setting_are_its_meaning() -> None:
    source = """
class Settings(BaseSettings):
    # --- things ---
    # How long a thing lasts,
    # in seconds.
    sms_code_ttl_seconds: int = 300  # NIST
    sms_code_max_attempts: int = 5

    demo: bool = False
"""
    entries = {entry.name: entry for entry in config_doc.entries(source)}
    assert entries["sms_code_ttl_seconds"].comment == "How long a thing lasts, in seconds. NIST"
    assert entries["sms_code_ttl_seconds"].section == "things"
    # A field with no comment of its own, right under another, shares the one above it.
    assert entries["sms_code_max_attempts"].comment == "How long a thing lasts, in seconds."
    assert entries["demo"].comment == ""
    page = config_doc.render(source)
    assert "## things" in page
    assert "| `QIANBAO_DEMO` | `bool` | `false` | Demo. |" in page
