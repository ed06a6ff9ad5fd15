"""axe-core on every page a visitor can reach, in English and Chinese: anonymous, signed
in and not verified, verified, the back office for staff, and the merchant portal. Pages
are found by following the links of each page from the start (same site, GET only), so a new page
linked from anywhere is checked without being listed here."""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urlparse

import pytest
from axe import AXE_MISSING, axe_available, blocking_violations, with_axe
from liveserver import PHONE_VIEWPORT, LiveServer
from playwright.sync_api import Browser, BrowserContext, Page
from test_security_browser import UK_E164, sign_up

from qianbao.access import ROLES
from qianbao.identity import service as identity
from qianbao.identity import staff
from qianbao.identity.phone import from_e164
from qianbao.money import Money
from qianbao.verification import service as verification
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.payments import service as payments
from tests.openplatform.portal.helpers import new_shop

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not axe_available(), reason=AXE_MISSING),
]

# Not pages of Qianbao's own design (the OpenAPI explorer), files rather than pages,
# and links that end the session the crawl is using.
SKIPPED = re.compile(
    r"^/(docs|redoc|openapi\.json|api/|static/|healthz|metrics)|"
    r"logout|log-out|sign-out|\.(csv|svg|png|jpe?g|js|css|json|txt|pem)$"
)
MOST_PAGES = 80  # a guard against a crawl that never ends (links made per visit)
STAFF_PASSWORD = "a long reviewer passphrase"


def same_site_links(page: Page, server: LiveServer) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    found = []
    for href in hrefs:
        url, _ = urldefrag(href)
        parts = urlparse(url)
        if url.startswith(server.url) and not SKIPPED.search(parts.path):
            found.append(url)
    return found


def crawl(page: Page, server: LiveServer, starts: list[str]) -> dict[str, list[str]]:
    """Visit every page reachable from ``starts``; each page's blocking violations."""
    queue = [server.url + start for start in starts]
    seen: set[str] = set(queue)
    problems: dict[str, list[str]] = {}
    while queue and len(seen) <= MOST_PAGES:
        url = queue.pop(0)
        response = page.goto(url)
        if response is None or "text/html" not in response.headers.get("content-type", ""):
            continue
        violations = blocking_violations(page)
        if violations:
            problems[urlparse(url).path] = [str(v) for v in violations]
        for link in same_site_links(page, server):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    assert len(seen) > len(starts), f"the crawl from {starts} found no link"
    return problems


def in_both_languages(
    context: BrowserContext, server: LiveServer, *starts: str
) -> dict[str, list[str]]:
    """The crawl from ``starts`` in English, then in Chinese (the language cookie)."""
    problems: dict[str, list[str]] = {}
    page = context.new_page()
    for language in ("en", "zh_Hans"):
        context.add_cookies([{"name": "qb_lang", "value": language, "url": server.url}])
        for path, found in crawl(page, server, list(starts)).items():
            problems[f"{language} {path}"] = found
    page.close()
    return problems


def fresh_context(browser: Browser) -> BrowserContext:
    context = with_axe(browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB"))
    context.set_default_timeout(10_000)
    return context


def test_every_page_passes_axe_for_visitors_people_staff_and_merchants(
    browser: Browser, live_server: LiveServer
) -> None:
    server = live_server
    problems: dict[str, list[str]] = {}

    visitor = fresh_context(browser)
    problems |= tagged("anonymous", in_both_languages(visitor, server, "/"))
    visitor.close()

    person = fresh_context(browser)
    sign_up(person.new_page(), server)
    account = server.db.run(lambda tx: identity.account_by_phone(tx, from_e164(UK_E164)))
    # Pages no link leads to without a step first: a cashier, a pay-for-me link, and the
    # first step of "Verify face".
    shop = payments.demo_merchant(server.db)
    order = server.db.run(
        lambda tx: payments.create_order(tx, shop, "A11Y1", "Tea", Money.of("CNY", "42.00"))
    )
    link = server.db.run(lambda tx: pay_for_me.ask_a_friend(tx, account.id, order.id))
    server.db.run(lambda tx: verification.start_case(tx, account.id))
    unverified_starts = ("/home", f"/cashier/{order.id}", link.path, "/me/verify/passport-face")
    problems |= tagged("unverified", in_both_languages(person, server, *unverified_starts))
    server.db.run(lambda tx: identity.set_verification_level(tx, account.id, "passport_face"))
    problems |= tagged(
        "verified", in_both_languages(person, server, "/home", f"/cashier/{order.id}")
    )
    person.close()

    for role in ROLES:  # each role sees its own back-office pages
        staff.create_staff(server.db, role, role.title(), STAFF_PASSWORD, role)
        member = fresh_context(browser)
        page = member.new_page()
        page.goto(server.url + "/admin/login")
        page.locator("#username").fill(role)
        page.locator("#password").fill(STAFF_PASSWORD)
        page.locator("main form button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/admin(?!/login)"))
        problems |= tagged(f"staff ({role})", in_both_languages(member, server, "/admin"))
        member.close()

    # The merchant portal: its sign-in and application pages, then a merchant's own.
    problems |= tagged(
        "anonymous", in_both_languages(fresh_context(browser), server, "/merchant/login")
    )
    shop = new_shop(server.db, "Teahouse Online", "owner@teahouse.example")
    merchant = fresh_context(browser)
    page = merchant.new_page()
    page.goto(server.url + "/merchant/login")
    page.get_by_label("Email or username").fill(shop.login)
    page.get_by_label("Password").fill(shop.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/merchant/orders"))
    problems |= tagged("merchant", in_both_languages(merchant, server, "/merchant/orders"))
    merchant.close()
    assert problems == {}, "\n".join(f"{where}: {found}" for where, found in problems.items())


def tagged(who: str, problems: dict[str, list[str]]) -> dict[str, list[str]]:
    return {f"{who} {where}": found for where, found in problems.items()}
