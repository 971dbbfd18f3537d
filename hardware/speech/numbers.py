"""Numbers into words before synthesis, in Chinese (Mandarin and Cantonese) and English.

espeak-ng reads what it is given, and figures badly: with the Mandarin voice "¥65.95" comes
out as 六十五 九 五, "03:00" as 三 零 零, "05:25" as 五 二十五 and the ticket "A012" as
A 零 十二 (FIELD_NOTES). ``speakable`` rewrites money, dates, clock times, ticket numbers and
plain counts as the words a person would say, so the engine has nothing left to guess:

    speakable("您需支付 ¥65.95", "zh")      -> "您需支付 六十五元九角五分"
    speakable("16:05 开始签到", "zh")        -> "十六点零五分 开始签到"
    speakable("Your number is A012", "en")  -> "Your number is A, zero one two"
    speakable("3 people ahead of you", "en") -> "three people ahead of you"

Long digit strings (phone or card numbers, five digits and more) are read digit by digit.
Text without figures comes back unchanged.
"""
from __future__ import annotations

import re

_MONEY = re.compile(r"[¥￥]\s?(\d+)(?:\.(\d{1,2}))?")
_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_TICKET = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,3})(\d{1,5})(?![A-Za-z0-9])")
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?![\d])")

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_MEASURES = ("人", "位", "份", "个", "项", "分钟", "秒", "张", "次", "天")  # a count of 2 before these is 两


# -- Chinese ------------------------------------------------------------------------------------
def zh_number(n: int) -> str:
    """0 -> 零, 10 -> 十, 12 -> 十二, 105 -> 一百零五, 2026 -> 二千零二十六, 10000 -> 一万."""
    if n < 0:
        return "负" + zh_number(-n)
    if n < 10:
        return _ZH_DIGITS[n]
    if n >= 100_000_000:
        return _zh_digits(str(n))
    if n >= 10_000:
        high, low = divmod(n, 10_000)
        return zh_number(high) + "万" + (("零" if low < 1000 else "") + zh_number(low) if low else "")
    words, zero = "", False
    for unit, value in (("千", 1000), ("百", 100), ("十", 10), ("", 1)):
        digit, n = divmod(n, value)
        if digit:
            if zero:
                words += "零"
            words += _ZH_DIGITS[digit] + unit
            zero = False
        elif words:
            zero = True
    if words.startswith("一十"):  # 12 is 十二, not 一十二
        words = words[1:]
    return words


def _zh_digits(digits: str) -> str:
    return "".join(_ZH_DIGITS[int(d)] for d in digits)


def _zh_money(m: re.Match) -> str:
    yuan, cents = int(m.group(1)), (m.group(2) or "").ljust(2, "0")
    jiao, fen = int(cents[0]), int(cents[1])
    words = zh_number(yuan) + "元" if yuan or not (jiao or fen) else ""  # ¥0.50 is 五角
    if jiao:
        words += _ZH_DIGITS[jiao] + "角"
    if fen:
        words += ("零" if not jiao and yuan else "") + _ZH_DIGITS[fen] + "分"
    return words


def _zh_time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    words = ("两" if hour == 2 else zh_number(hour)) + "点"
    if minute:
        words += ("零" if minute < 10 else "") + zh_number(minute) + "分"
    return words


def _zh_date(m: re.Match) -> str:
    year, month, day = m.group(1), int(m.group(2)), int(m.group(3))
    return "".join("〇" if d == "0" else _ZH_DIGITS[int(d)] for d in year) + "年" + zh_number(month) + "月" + \
        zh_number(day) + "日"


def _zh_plain(m: re.Match) -> str:
    whole, frac = m.group(1), m.group(2)
    if len(whole) >= 5 and not frac:
        return _zh_digits(whole)
    n = int(whole)
    after = m.string[m.end():].lstrip()
    ordinal = m.string[:m.start()].rstrip().endswith("第")  # 第 2 诊室 is 第二, never 第两
    if n == 2 and not frac and not ordinal and after.startswith(_ZH_MEASURES):
        return "两"
    return zh_number(n) + ("点" + _zh_digits(frac) if frac else "")


def _zh_ticket(m: re.Match) -> str:
    return m.group(1) + " " + _zh_digits(m.group(2))


# -- English ------------------------------------------------------------------------------------
_EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen").split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
               "nine": "ninth", "twelve": "twelfth"}
_MONTHS = ("January February March April May June July August September October November December").split()


def en_number(n: int) -> str:
    """3 -> three, 42 -> forty-two, 105 -> one hundred and five, 2026 -> two thousand and twenty-six."""
    if n < 0:
        return "minus " + en_number(-n)
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + ("-" + _EN_ONES[ones] if ones else "")
    if n >= 1_000_000_000:
        return _en_digits(str(n))
    for value, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= value:
            high, low = divmod(n, value)
            rest = "" if not low else (" and " if low < 100 else " ") + en_number(low)
            return en_number(high) + " " + name + rest
    raise AssertionError("unreachable")


def _en_digits(digits: str) -> str:
    return " ".join(_EN_ONES[int(d)] for d in digits)


def _en_ordinal(n: int) -> str:
    words = en_number(n)
    head, _, last = words.rpartition("-")
    if last in _EN_ORDINAL:
        last = _EN_ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + "-" if head else "") + last


def _en_money(m: re.Match) -> str:
    yuan, cents = int(m.group(1)), int((m.group(2) or "0").ljust(2, "0"))
    return en_number(yuan) + " yuan" + (" " + en_number(cents) if cents else "")


def _en_time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 0 and minute == 0:
        return "midnight"
    if hour == 12 and minute == 0:
        return "twelve noon"
    suffix = "a.m." if hour < 12 else "p.m."
    words = en_number(hour % 12 or 12)
    if minute:
        words += " " + ("oh " + en_number(minute) if minute < 10 else en_number(minute))
    return words + " " + suffix


def _en_year(year: int) -> str:
    high, low = divmod(year, 100)
    if 2000 <= year < 2010:
        return en_number(year)
    return en_number(high) + " " + ("hundred" if not low else ("oh " if low < 10 else "") + en_number(low))


def _en_date(m: re.Match) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= month <= 12:
        return m.group(0)
    return f"{_MONTHS[month - 1]} {_en_ordinal(day)}, {_en_year(year)}"


def _en_plain(m: re.Match) -> str:
    whole, frac = m.group(1), m.group(2)
    if len(whole) >= 5 and not frac:
        return _en_digits(whole)
    return en_number(int(whole)) + (" point " + _en_digits(frac) if frac else "")


def _en_ticket(m: re.Match) -> str:
    # "A, zero one two": the comma makes espeak say the letter ("ay"), not the article ("a").
    return m.group(1) + ", " + _en_digits(m.group(2))


# Applied in this order: money and dates before clock times, all of them before plain numbers.
_PATTERNS = (_MONEY, _DATE, _TIME, _TICKET, _NUMBER)
_WORDS = {"zh": (_zh_money, _zh_date, _zh_time, _zh_ticket, _zh_plain),
          "en": (_en_money, _en_date, _en_time, _en_ticket, _en_plain)}
# Cantonese reads the same written numerals (and the same 两 before a measure word) in its own sounds:
# espeak-ng's yue voice says 两点零五分 as loeng5 dim2 ling4 ng5 fan1, but "A012" raw as A 零 十 二.
_WORDS["yue"] = _WORDS["zh"]


def speakable(text: str, language: str) -> str:
    """``text`` with every figure written out in ``language``'s words ("zh", "yue" or "en"; others unchanged)."""
    for pattern, words in zip(_PATTERNS, _WORDS.get(language, ())):
        text = pattern.sub(words, text)
    return text
