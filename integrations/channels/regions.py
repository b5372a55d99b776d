"""Chinese provinces and the sales regions our allocation ranks warehouses by (ship_to.region).

A province may be written as platforms write it: short or full Chinese name (上海 / 上海市, 内蒙古 / 内蒙古自治区),
ISO 3166-2:CN code with or without the country ("SH", "CN-SH"; Shopify's province_code) or English/pinyin name
("Shanghai", "Inner Mongolia"). Anything else is unknown: region "" and business validation rejects the order
with a reason. Hong Kong, Macau and Taiwan are left out on purpose: shipping there is cross-border.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Province:
    name: str  # the short Chinese name we store in ship_to.province ("上海", "广东")
    region: str


# (short name, full name, ISO 3166-2:CN code, English/pinyin names), by region.
_REGIONS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "华东": [
        ("上海", "上海市", "SH", ("Shanghai",)),
        ("江苏", "江苏省", "JS", ("Jiangsu",)),
        ("浙江", "浙江省", "ZJ", ("Zhejiang",)),
        ("安徽", "安徽省", "AH", ("Anhui",)),
        ("福建", "福建省", "FJ", ("Fujian",)),
        ("江西", "江西省", "JX", ("Jiangxi",)),
        ("山东", "山东省", "SD", ("Shandong",)),
    ],
    "华北": [
        ("北京", "北京市", "BJ", ("Beijing",)),
        ("天津", "天津市", "TJ", ("Tianjin",)),
        ("河北", "河北省", "HE", ("Hebei",)),
        ("山西", "山西省", "SX", ("Shanxi",)),
        ("内蒙古", "内蒙古自治区", "NM", ("Inner Mongolia", "Nei Mongol", "Neimenggu")),
    ],
    "华中": [
        ("河南", "河南省", "HA", ("Henan",)),
        ("湖北", "湖北省", "HB", ("Hubei",)),
        ("湖南", "湖南省", "HN", ("Hunan",)),
    ],
    "华南": [
        ("广东", "广东省", "GD", ("Guangdong",)),
        ("广西", "广西壮族自治区", "GX", ("Guangxi", "Guangxi Zhuang")),
        ("海南", "海南省", "HI", ("Hainan",)),
    ],
    "西南": [
        ("重庆", "重庆市", "CQ", ("Chongqing",)),
        ("四川", "四川省", "SC", ("Sichuan",)),
        ("贵州", "贵州省", "GZ", ("Guizhou",)),
        ("云南", "云南省", "YN", ("Yunnan",)),
        ("西藏", "西藏自治区", "XZ", ("Tibet", "Xizang")),
    ],
    "西北": [
        ("陕西", "陕西省", "SN", ("Shaanxi",)),
        ("甘肃", "甘肃省", "GS", ("Gansu",)),
        ("青海", "青海省", "QH", ("Qinghai",)),
        ("宁夏", "宁夏回族自治区", "NX", ("Ningxia", "Ningxia Hui")),
        ("新疆", "新疆维吾尔自治区", "XJ", ("Xinjiang", "Xinjiang Uygur", "Xinjiang Uyghur")),
    ],
    "东北": [
        ("辽宁", "辽宁省", "LN", ("Liaoning",)),
        ("吉林", "吉林省", "JL", ("Jilin",)),
        ("黑龙江", "黑龙江省", "HL", ("Heilongjiang",)),
    ],
}
REGIONS: tuple[str, ...] = tuple(_REGIONS)

# Shopify has long listed Tibet under "YZ", the pre-2017 code; no other province uses it.
_EXTRA_CODES = {"YZ": "西藏"}
# Suffixes platforms add or leave off at will ("广西自治区", "Guangdong Sheng", "Shanghai City").
_SUFFIX = re.compile(
    r"(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|province|sheng|shi|municipality|city|autonomousregion|zizhiqu)$"
)


def _key(text: str) -> str:
    return re.sub(r"[\s\-_.,'()]", "", text).casefold()


def _index() -> dict[str, Province]:
    index: dict[str, Province] = {}
    for region, provinces in _REGIONS.items():
        for short, full, code, english in provinces:
            province = Province(short, region)
            for alias in (short, full, code, f"CN-{code}", *english):
                index[_key(alias)] = province
    for code, short in _EXTRA_CODES.items():
        index[_key(code)] = index[_key(short)]
    return index


_PROVINCES = _index()


def find_province(text: str | None) -> Province | None:
    """The province `text` names, or None."""
    if not text:
        return None
    key = _key(text)
    return _PROVINCES.get(key) or _PROVINCES.get(_SUFFIX.sub("", key))


def region_of(text: str | None) -> str:
    """The sales region of the province `text` names; "" when unknown."""
    province = find_province(text)
    return province.region if province else ""
