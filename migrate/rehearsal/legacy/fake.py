"""Deterministic, realistic-looking data for the legacy department machines.

Every generator takes a ``random.Random`` created by :func:`rng_for`, keyed by the system
id, the host and a path, so the same manifest gives the same bytes on every run and every
machine. Numbers that carry a check digit (resident ID cards, unified social credit codes)
get a valid one, so a migrated system that validates them keeps working.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, timedelta

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强文博晓东海燕丹凤玉兰红梅慧敏子涵雨轩浩然欣怡梓萱宇航思远佳怡嘉豪俊杰"  # noqa: E501
# Real county-level division codes (GB/T 2260) of a few provinces, used as ID prefixes.
REGION_CODES = (
    "110101", "110105", "120101", "310104", "310115", "320102", "320583", "330106",
    "330212", "340104", "350203", "370102", "370202", "410105", "420106", "430104",
    "440106", "440305", "500103", "510107", "610113", "620102",
)
DISTRICTS = ("城关区", "高新区", "经开区", "滨江区", "东城区", "西城区", "南湖区", "北山县")
COMPANY_WORDS = ("华信", "恒泰", "鼎盛", "瑞丰", "众诚", "金桥", "中正", "宏远", "新锐", "广达",
                 "安和", "汇通", "博远", "天成", "嘉禾", "润德")
COMPANY_TRADES = ("科技", "商贸", "建设工程", "物流", "餐饮管理", "信息技术", "医药", "农业开发",
                  "文化传媒", "环保科技")
COMPANY_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
PHRASES = (
    "经审核材料齐全", "符合办理条件", "已按规定归档", "申请人现场确认", "系统自动核验通过",
    "补正材料后受理", "窗口受理", "网上申报", "经办人复核", "已告知办理结果", "按月发放",
    "数据已同步至共享平台", "依申请公开", "档案已扫描", "业务办结", "退回补充材料",
)
BUSINESS_TYPES = ("新办", "变更", "续办", "注销", "查询", "补办", "转移", "核验")

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

EPOCH = date(2010, 1, 1)


def rng_for(*parts: str) -> random.Random:
    """A PRNG keyed by ``parts`` (system id, host, path...): same parts, same stream."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def person_name(rng: random.Random) -> str:
    letters = rng.choices(GIVEN, k=3)
    letters[0] = rng.choice(SURNAMES)
    return "".join(letters[: 2 if rng.random() < 0.33 else 3])


def id_card_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a resident ID number (GB 11643)."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def id_card_number(rng: random.Random) -> str:
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 66))
    first17 = f"{rng.choice(REGION_CODES)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_card_check_digit(first17)


def valid_id_card(number: str) -> bool:
    return (len(number) == 18 and number[:17].isdigit()
            and id_card_check_digit(number[:17]) == number[17])


def _org_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def _org_code_check(body: str) -> str:
    """Check character of an organisation code (GB 11714), 8 characters of body."""
    total = sum(_org_value(c) * w for c, w in zip(body, ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_check_digit(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100, MOD 31)."""
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def uscc(rng: random.Random) -> str:
    body = "".join(rng.choices(USCC_CHARS, k=8))
    first17 = "91" + rng.choice(REGION_CODES) + body + _org_code_check(body)
    return first17 + uscc_check_digit(first17)


def valid_uscc(code: str) -> bool:
    return (len(code) == 18 and all(c in USCC_CHARS for c in code)
            and uscc_check_digit(code[:17]) == code[17])


def company_name(rng: random.Random) -> str:
    return (f"示例市{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_TRADES)}"
            f"{rng.choice(COMPANY_FORMS)}")


def day(rng: random.Random, start: date = EPOCH, span_days: int = 5800) -> date:
    return start + timedelta(days=rng.randrange(span_days))


def moment(rng: random.Random) -> datetime:
    when = day(rng)
    return datetime(when.year, when.month, when.day, rng.randrange(8, 18),
                    rng.randrange(60), rng.randrange(60))


def amount(rng: random.Random, low: int = 100, high: int = 500_000) -> str:
    """Money in yuan with two decimals, as PostgreSQL prints numeric(14,2)."""
    cents = rng.randrange(low * 100, high * 100)
    return f"{cents // 100}.{cents % 100:02d}"


def remark(rng: random.Random, phrases: int = 2) -> str:
    return "，".join(rng.choices(PHRASES, k=phrases)) + "。"


def realty_unit_number(rng: random.Random) -> str:
    """不动产单元号: 6 region + 6 cadastral zone + 2 letters + 5 parcel + W + 8 digits."""
    return (f"{rng.choice(REGION_CODES)}{rng.randrange(10**6):06d}GB{rng.randrange(10**5):05d}"
            f"F{rng.randrange(10**8):08d}")


def birth_certificate_number(rng: random.Random) -> str:
    return f"{rng.choice('MNOPQR')}{rng.randrange(10**9):09d}"


def user_token(rng: random.Random) -> str:
    return f"U{rng.getrandbits(64):016x}"
