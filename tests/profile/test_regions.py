"""The lists a person chooses from: occupation types and the region picker's data."""

from __future__ import annotations

import re

import pytest

from qianbao.i18n import language_scope
from qianbao.profile import regions, regions_data
from qianbao.profile.occupations import OCCUPATIONS, find_occupation
from qianbao.profile.regions import OVERSEAS, find_city, find_state, location_label

MUNICIPALITIES = {
    "110000": "Beijing",
    "120000": "Tianjin",
    "310000": "Shanghai",
    "500000": "Chongqing",
}


def test_occupation_types_are_many_with_stable_unique_codes() -> None:
    codes = [o.code for o in OCCUPATIONS]
    assert len(codes) >= 20
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[a-z_]{2,32}", code) for code in codes)
    for code in ("company_employee", "civil_servant", "student", "freelancer", "self_employed"):
        assert find_occupation(code) is not None
    for code in ("retired", "unemployed", "foreign_employee", "homemaker", "other"):
        assert find_occupation(code) is not None
    assert OCCUPATIONS[-1].code == "other"
    assert find_occupation("astronaut") is None


def test_occupation_labels_in_english_and_chinese() -> None:
    employee = find_occupation("company_employee")
    foreign = find_occupation("foreign_employee")
    assert employee and foreign
    with language_scope("en"):
        assert employee.label() == "Company employee"
        assert foreign.label() == "Foreign employee in China"
    with language_scope("zh_Hans"):
        assert employee.label() == "企业/公司职员"
        assert foreign.label() == "外籍人士在华工作"
        labels = [o.label() for o in OCCUPATIONS]
    assert all(re.search(r"[\u4e00-\u9fff]", label) for label in labels)


def test_every_mainland_province_and_hong_kong_macau_taiwan_and_overseas() -> None:
    codes = [state.code for state in regions.states()]
    assert codes[0] == OVERSEAS
    assert len(codes) == len(set(codes)) == 35  # 31 mainland, Taiwan, Hong Kong, Macau, Overseas
    mainland = [code for code in codes if code != OVERSEAS and code < "710000"]
    assert len(mainland) == 31
    assert all(re.fullmatch(r"[1-6]\d0000", code) for code in mainland)
    assert {"710000", "810000", "820000"} <= set(codes)


@pytest.mark.parametrize(
    ("code", "zh", "en"),
    [
        ("440000", "广东省", "Guangdong"),
        ("150000", "内蒙古自治区", "Inner Mongolia"),
        ("540000", "西藏自治区", "Tibet (Xizang)"),
        ("610000", "陕西省", "Shaanxi"),
        ("140000", "山西省", "Shanxi"),
        ("110000", "北京市", "Beijing"),
        ("810000", "香港特别行政区", "Hong Kong"),
        ("820000", "澳门特别行政区", "Macau"),
        ("710000", "台湾省", "Taiwan"),
        (OVERSEAS, "海外", "Overseas"),
    ],
)
def test_state_names_in_both_languages(code: str, zh: str, en: str) -> None:
    state = find_state(code)
    assert state is not None
    assert (state.name_zh, state.name_en) == (zh, en)
    assert state.name("zh_Hans") == zh
    assert state.name("en") == en


def test_cities_carry_their_provinces_gb2260_prefix() -> None:
    for state in regions.states():
        assert state.cities, state.code
        for city in state.cities:
            assert city.state_code == state.code
            if state.code == OVERSEAS:
                assert city.code == OVERSEAS
            else:
                assert re.fullmatch(r"\d{6}", city.code)
                assert city.code[:2] == state.code[:2]
    assert len(regions_data.CITIES) > 330


@pytest.mark.parametrize(
    ("code", "state", "zh", "en"),
    [
        ("440100", "440000", "广州市", "Guangzhou"),
        ("440300", "440000", "深圳市", "Shenzhen"),
        ("610100", "610000", "西安市", "Xi'an"),
        ("140400", "140000", "长治市", "Changzhi"),
        ("222400", "220000", "延边朝鲜族自治州", "Yanbian Korean Autonomous Prefecture"),
        ("152900", "150000", "阿拉善盟", "Alxa League"),
        ("650100", "650000", "乌鲁木齐市", "Urumqi"),
        ("469005", "460000", "文昌市", "Wenchang"),  # administered by the province directly
        ("460300", "460000", "三沙市", "Sansha"),
    ],
)
def test_city_names_in_both_languages(code: str, state: str, zh: str, en: str) -> None:
    city = find_city(code)
    assert city is not None
    assert (city.state_code, city.name_zh, city.name_en) == (state, zh, en)


def test_data_is_current() -> None:
    assert find_city("371200") is None  # Laiwu joined Jinan in 2019
    assert find_city("460300") is not None  # Sansha, 2012
    assert find_city("659012") is not None  # Baiyang, Xinjiang, 2023


@pytest.mark.parametrize("code", [*MUNICIPALITIES, "810000", "820000", "710000", OVERSEAS])
def test_a_municipality_sar_taiwan_or_overseas_is_its_own_single_city(code: str) -> None:
    state = find_state(code)
    assert state is not None
    assert state.is_single_city
    assert [city.code for city in state.cities] == [code]
    assert location_label(state, state.cities[0], "en") == state.name_en
    assert location_label(state, state.cities[0], "zh_Hans") == state.name_zh


def test_location_reads_naturally_in_each_language() -> None:
    guangdong, guangzhou = find_state("440000"), find_city("440100")
    assert guangdong and guangzhou
    assert location_label(guangdong, guangzhou, "en") == "Guangzhou, Guangdong"
    assert location_label(guangdong, guangzhou, "zh_Hans") == "广东省广州市"


def test_a_city_belongs_to_one_state_only() -> None:
    guangdong = find_state("440000")
    assert guangdong is not None
    assert guangdong.city("440100") is not None
    assert guangdong.city("320100") is None  # Nanjing is in Jiangsu
    assert guangdong.city(OVERSEAS) is None
