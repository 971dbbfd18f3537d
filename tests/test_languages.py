"""Every language the product claims is whole: screen words, announcement, a voice espeak-ng has, number words.

docs/languages.md gives the recipe for adding one; a language added halfway (listed, but with no
number words, or a voice this espeak-ng lacks) fails here rather than mumbling figures at a patient.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from display.strings import LABELS
from hardware.speech.numbers import speakable
from hardware.speech.port import ESPEAK_VOICES
from kiosk.i18n import LANGUAGES as KIOSK_LANGUAGES, catalogue
from protocol.announce import SUPPORTED_LANGUAGES, announcement_texts

FIGURE = re.compile(r"[0-9]")


@pytest.fixture(scope="module")
def espeak_voices() -> set[str]:
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True, timeout=10).stdout
    return {line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) > 4} | {
        line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_a_call_screen_language_has_every_word_a_voice_and_its_numbers(lang, espeak_voices):
    missing = [k for k, v in LABELS["en"].items() if v and not LABELS.get(lang, {}).get(k)]
    assert not missing, f"display/strings.py: {lang} lacks {missing}"
    texts = announcement_texts("A012", "r3", {"en": "room 3", "zh": "3 诊室"})
    recall = announcement_texts("A012", "r3", {"en": "room 3", "zh": "3 诊室"}, recall=True)
    assert texts.get(lang) and recall.get(lang) and recall[lang] != texts[lang]
    assert ESPEAK_VOICES.get(lang) in espeak_voices, f"no espeak-ng voice {ESPEAK_VOICES.get(lang)!r} for {lang}"
    spoken = [speakable(t, lang) for n in range(1000)
              for t in (f"A{n:03d}", f"{n}", f"¥{n}.50", f"{n % 24:02d}:{n % 60:02d}")]
    assert not [s for s in spoken if FIGURE.search(s)][:5], f"{lang}: figures left for the engine to guess"
    assert not FIGURE.search(speakable(texts[lang], lang))


@pytest.mark.parametrize("lang", sorted(KIOSK_LANGUAGES))
def test_a_kiosk_language_has_a_complete_catalogue_and_a_voice(lang, espeak_voices):
    english = catalogue("en")
    cat = catalogue(lang)
    assert ESPEAK_VOICES.get(lang) in espeak_voices
    if lang != "en":  # every English msgid is translated (English is the source language)
        untranslated = [m for m in english._catalog if isinstance(m, str) and m and m not in cat._catalog]  # type: ignore[attr-defined]
        assert not untranslated[:5], f"kiosk/locale for {lang}: untranslated {untranslated[:5]}"
