"""How pages write times, days, amounts, countries and statuses: the reader's clock with
the zone named, Babel's formats per language, words instead of codes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from qianbao.i18n import formats, language_scope, words
from qianbao.money import Money

EVENING_IN_BEIJING = datetime(2026, 12, 7, 9, 14, tzinfo=UTC)  # 17:14 in Beijing


def test_a_time_is_shown_on_the_readers_clock_with_the_zone_named_in_english() -> None:
    with language_scope("en"):
        assert formats.local_datetime(EVENING_IN_BEIJING, "Asia/Shanghai") == (
            "Dec 7, 2026, 5:14\u202fPM (China Standard Time)"
        )
        assert formats.local_datetime(EVENING_IN_BEIJING, "America/New_York") == (
            "Dec 7, 2026, 4:14\u202fAM (Eastern Standard Time)"
        )


def test_a_time_in_chinese_uses_the_chinese_date_format_and_zone_name() -> None:
    with language_scope("zh_Hans"):
        assert formats.local_datetime(EVENING_IN_BEIJING, "Asia/Shanghai") == (
            "2026年12月7日 17:14（中国标准时间）"
        )
        assert formats.local_datetime(EVENING_IN_BEIJING, "Europe/London").endswith(
            "09:14（格林尼治标准时间）"
        )


def test_summer_time_is_named_as_summer_time() -> None:
    july = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    with language_scope("en"):
        assert formats.local_datetime(july, "Europe/London") == (
            "Jul 1, 2026, 1:00\u202fPM (British Summer Time)"
        )


def test_the_current_zone_is_beijing_until_a_page_sets_the_persons() -> None:
    assert formats.current_time_zone() == "Asia/Shanghai"
    with language_scope("en"):
        assert "5:14" in formats.local_datetime(EVENING_IN_BEIJING)


def test_a_naive_time_from_the_database_is_read_as_utc() -> None:
    naive = EVENING_IN_BEIJING.replace(tzinfo=None)
    with language_scope("en"):
        assert formats.local_datetime(naive, "Asia/Shanghai") == formats.local_datetime(
            EVENING_IN_BEIJING, "Asia/Shanghai"
        )


def test_a_day_is_the_readers_calendar_day() -> None:
    late = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # already the 8th in Beijing
    with language_scope("en"):
        assert formats.local_date(late, "Asia/Shanghai") == "Dec 8, 2026"
        assert formats.local_date(late, "Europe/London") == "Dec 7, 2026"
        assert formats.local_date(date(2030, 1, 2)) == "Jan 2, 2030"
    with language_scope("zh_Hans"):
        assert formats.local_date(late, "Asia/Shanghai") == "2026年12月8日"


def test_unknown_zones_are_refused_and_never_used() -> None:
    assert formats.is_time_zone("Europe/London")
    assert not formats.is_time_zone("Mars/Olympus_Mons")
    assert not formats.is_time_zone("../../etc/passwd")
    formats.set_time_zone("Mars/Olympus_Mons")
    assert formats.current_time_zone() == "Asia/Shanghai"


def test_the_zone_choices_start_with_the_persons_and_the_detected_one() -> None:
    with language_scope("en"):
        choices = formats.time_zone_choices("Asia/Tokyo", "Europe/Dublin")
    assert [zone for zone, _ in choices[:2]] == ["Asia/Tokyo", "Europe/Dublin"]
    assert ("Asia/Shanghai", "China Standard Time · Asia/Shanghai") in choices
    assert len({zone for zone, _ in choices}) == len(choices)


@pytest.mark.parametrize(
    ("language", "shown"),
    [("en", "CNY\u00a0250.00"), ("zh_Hans", "CNY\u00a0250.00")],
)
def test_an_amount_is_one_unbreakable_span(language: str, shown: str) -> None:
    with language_scope(language):  # type: ignore[arg-type]
        html = formats.amount(Money.of("CNY", "250"))
    assert str(html) == f'<span class="amount">{shown}</span>'


@pytest.mark.parametrize(
    ("code", "english", "chinese"),
    [("MYS", "Malaysia", "马来西亚"), ("USA", "United States", "美国"), ("D", "Germany", "德国")],
)
def test_nationality_codes_become_country_names(code: str, english: str, chinese: str) -> None:
    with language_scope("en"):
        assert formats.country_name(code) == english
    with language_scope("zh_Hans"):
        assert formats.country_name(code) == chinese


def test_a_code_that_names_no_country_is_shown_as_it_is() -> None:
    with language_scope("en"):
        assert formats.country_name("XXA") == "XXA"
        assert formats.country_name(None) == ""


@pytest.mark.parametrize(
    ("code", "english", "chinese"),
    [
        ("TRADE_SUCCESS", "Paid", "已付款"),
        ("TRADE_CLOSED", "Closed", "已关闭"),
        ("TRADE_FINISHED", "Completed", "交易完成"),
        ("WAIT_BUYER_PAY", "Waiting for payment", "等待付款"),
    ],
)
def test_trade_statuses_are_words_in_both_languages(code: str, english: str, chinese: str) -> None:
    with language_scope("en"):
        assert words.trade_status(code) == english
    with language_scope("zh_Hans"):
        assert words.trade_status(code) == chinese


def test_sources_and_transfer_directions_are_words() -> None:
    with language_scope("zh_Hans"):
        assert words.source("foreign_card") == "境外银行卡"
        assert words.source("balance") == "余额"
        assert words.transfer_state("received") == "已收款"
    with language_scope("en"):
        assert words.source("tour_pass") == "Tour Pass"
        assert words.source("bank_card") == "Mainland bank card"
        assert words.source(None) == ""
        assert words.trade_status("SOMETHING_NEW") == "SOMETHING_NEW"


def test_the_sign_stays_inside_the_amount() -> None:
    with language_scope("en"):
        html = formats.amount(Money.of("CNY", "5"), "−")
    assert str(html) == '<span class="amount">−CNY\u00a05.00</span>'
