"""axe-core in the browser tests: the npm package (package.json at the repository root,
installed by ``npm ci``) is injected into a page and run there.

``axe_available()`` says whether ``node_modules/axe-core`` is installed; tests that need it
skip with ``AXE_MISSING`` as their reason when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

AXE_SCRIPT = Path(__file__).parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_MISSING = (
    "axe-core is not installed: run `npm ci` at the repository root (package-lock.json "
    "pins it) to run the accessibility tests"
)
# What fails a page: axe's two worst impact levels (WCAG failures a person cannot get
# round: unlabelled controls, unreadable contrast, no page language...).
BLOCKING = frozenset({"serious", "critical"})


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.impact} {self.rule} ({self.help}): {', '.join(self.targets[:5])}"


def axe_available() -> bool:
    return AXE_SCRIPT.is_file()


def with_axe(context: BrowserContext) -> BrowserContext:
    """Every page of ``context`` gets axe-core before its own scripts run (an init script
    is the browser's, so Qianbao's Content-Security-Policy does not block it)."""
    if axe_available():
        context.add_init_script(path=str(AXE_SCRIPT))
    return context


def inject_axe(page: Page) -> None:
    """axe-core into a page whose context did not get it from ``with_axe``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))


def blocking_violations(page: Page) -> list[Violation]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.x A and
    AA rules and axe's best practices)."""
    inject_axe(page)
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const results = await window.axe.run(document, {resultTypes: ['violations']});
            return results.violations.map(v => ({
                rule: v.id, impact: v.impact || '', help: v.help,
                targets: v.nodes.map(n => n.target.join(' ')),
            }));
        }"""
    )
    return [Violation(**item) for item in found if item["impact"] in BLOCKING]
