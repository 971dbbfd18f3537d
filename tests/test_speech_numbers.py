"""Numbers into words before synthesis, checked against what espeak-ng itself will say (its phonemes).

``espeak-ng -q -x -v VOICE TEXT`` prints the phonemes without playing anything: the raw figures
show the misreadings a patient would hear (¥65.95 as 六十五 九 五), the words show the fix.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from hardware.speech.numbers import en_number, speakable, zh_number

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian package)")
VOICE = {"zh": "cmn-latn-pinyin", "en": "en"}


def phonemes(text: str, language: str) -> str:
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", VOICE[language], "--", text], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    return " ".join(out.split())


# (figure, the words a person says); each also sounds different from the raw figure.
ZH_CASES = [
    ("您需支付 ¥65.95", "您需支付 六十五元九角五分"),
    ("¥10.00", "十元"),
    ("¥105.05", "一百零五元零五分"),
    ("03:00 开始", "三点 开始"),
    ("05:25", "五点二十五分"),
    ("16:05", "十六点零五分"),
    ("2026-12-03", "二〇二六年十二月三日"),
    ("请 A012 号", "请 A 零一二 号"),
    ("前面还有 2 人", "前面还有 两 人"),
    ("约 25 分钟", "约 二十五 分钟"),
]
EN_CASES = [  # (figure, words, espeak-ng reads the bare figure differently)
    ("You pay ¥65.95.", "You pay sixty-five yuan ninety-five.", True),
    ("at 16:30", "at four thirty p.m.", True),
    ("at 09:05", "at nine oh five a.m.", True),
    ("on 2026-12-03", "on December third, twenty twenty-six", True),
    ("Your number is A012.", "Your number is A, zero one two.", True),
    ("3 people ahead of you", "three people ahead of you", False),  # the same sound either way
]


@pytest.mark.parametrize("raw, words", ZH_CASES)
def test_chinese_figures_become_the_words_espeak_should_say(raw, words):
    spoken = speakable(raw, "zh")
    assert spoken == words
    assert phonemes(spoken, "zh") == phonemes(words, "zh")
    assert phonemes(raw, "zh") != phonemes(words, "zh"), "espeak-ng reads this figure wrongly on its own"


@pytest.mark.parametrize("raw, words, misread", EN_CASES)
def test_english_figures_become_the_words_espeak_should_say(raw, words, misread):
    spoken = speakable(raw, "en")
    assert spoken == words
    assert phonemes(spoken, "en") == phonemes(words, "en")
    assert (phonemes(raw, "en") != phonemes(words, "en")) == misread


def test_the_misreadings_from_the_field_are_gone():
    """FIELD_NOTES: ¥65.95 -> 六十五 九 五, 03:00 -> 三 零 零, 05:25 -> 五 二十五, A012 -> A 零 十二."""
    yuan, jiao, fen, dian, ling, shi = "'y&35n", "tS;j'Au35", "f'@55n", "t'iE", "l'i35N", "s.'i.35"
    assert yuan not in phonemes("¥65.95", "zh")
    assert all(p in phonemes(speakable("¥65.95", "zh"), "zh") for p in (yuan, jiao, fen))
    assert dian not in phonemes("03:00", "zh") and dian in phonemes(speakable("03:00", "zh"), "zh")
    assert phonemes(speakable("05:25", "zh"), "zh").count(fen) == 1
    ticket = phonemes(speakable("A012", "zh"), "zh")
    assert ticket.startswith("'ei51") and ling in ticket and shi not in ticket  # A 零一二, not A 零十二
    english = phonemes(speakable("A012", "en"), "en")
    assert english.startswith("'eI") and "z'i@roU w'0n t'u:" in english  # the letter, not the article "a"


def test_number_words_cover_the_awkward_cases():
    assert [zh_number(n) for n in (0, 10, 12, 20, 101, 110, 1005, 10000, 10500)] == \
        ["零", "十", "十二", "二十", "一百零一", "一百一十", "一千零五", "一万", "一万零五百"]
    assert [en_number(n) for n in (0, 13, 40, 42, 105, 2026)] == \
        ["zero", "thirteen", "forty", "forty-two", "one hundred and five", "two thousand and twenty-six"]
    assert speakable("13800000001", "zh") == "一三八零零零零零零零一"  # a phone number, digit by digit
    assert speakable("¥0.50", "zh") == "五角" and speakable("12:00", "en") == "twelve noon"
    assert speakable("没有数字。", "zh") == "没有数字。" and speakable("x", "yue") == "x"
