"""Every kiosk text is translated (gettext catalogues zh_CN and en); the symptom guide is data, validated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.i18n import LOCALE_DIR, Translator, catalogue
from kiosk.symptom_guide import GuideError, SymptomGuide

ROOT = Path(__file__).resolve().parent.parent


def _extracted_ids(tmp_path: Path) -> set[str]:
    pot = tmp_path / "kiosk.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(LOCALE_DIR / "babel.cfg"),
                    "-k", "tr", "-k", "t", "-k", "N_", "--no-location", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    from babel.messages.pofile import read_po

    with pot.open("rb") as fh:
        return {m.id for m in read_po(fh) if m.id}


def test_every_kiosk_string_has_a_chinese_and_english_translation(tmp_path):
    ids = _extracted_ids(tmp_path)
    assert len(ids) > 100
    zh, en = catalogue("zh"), catalogue("en")
    singular = {i for i in ids if isinstance(i, str)}
    plural = {i for i in ids if isinstance(i, tuple)}  # ngettext: (singular, plural)
    assert len(plural) >= 4
    untranslated = sorted(i for i in singular if zh.gettext(i) == i and i != "AP____")
    untranslated += sorted(i[0] for i in plural if zh.ngettext(i[0], i[1], 1) == i[0])
    assert untranslated == []
    assert all(en.gettext(i) for i in singular)
    assert all(en.ngettext(s, p, 1) and en.ngettext(s, p, 2) for s, p in plural)


def test_translator_formats_and_switches_language():
    tr = Translator("zh")
    assert tr("Back to start in {s} s", s=3) == "3 秒后返回首页"
    tr.set_language("en")
    assert tr("Back to start in {s} s", s=3) == "Back to start in 3 s"
    assert tr.pick({"zh": "内科", "en": "Internal medicine"}) == "Internal medicine"
    with pytest.raises(ValueError):
        Translator("fr")


def test_plural_forms_follow_each_catalogue():
    """English has one person and two people; Chinese has one form (前面还有 1 人)."""
    en, zh = Translator("en"), Translator("zh")
    ahead = ("{n} person ahead of you", "{n} people ahead of you")
    assert en.ngettext(*ahead, 1) == "1 person ahead of you"
    assert en.ngettext(*ahead, 2) == "2 people ahead of you"
    assert zh.ngettext(*ahead, 1) == "前面还有 1 人" and zh.ngettext(*ahead, 5) == "前面还有 5 人"
    assert en.ngettext("Print {n} report", "Print {n} reports", 1) == "Print 1 report"


def test_shipped_symptom_guide_puts_red_flags_first():
    guide = SymptomGuide.load()
    assert guide.recommend({"chest_pain", "breathless"}, 50).red_flag
    assert guide.recommend({"chest_pain", "breathless", "cough"}, 50).department == "emergency"
    assert guide.recommend({"cough"}, 40).department == "internal"
    assert guide.recommend({"cough"}, 6).department == "pediatrics"
    assert guide.recommend({"wound"}, 30).department == "surgery"
    assert all(s.name["zh"] and s.name["en"] for s in guide.symptoms)


def test_hospital_can_edit_the_guide_and_mistakes_are_named(tmp_path):
    path = tmp_path / "guide.toml"
    path.write_text("""
[[areas]]
id = "eye"
name = { zh = "眼", en = "Eye" }
[[symptoms]]
id = "red_eye"
area = "eye"
name = { zh = "眼红", en = "Red eye" }
[[rules]]
id = "eyes"
any = ["red_eye"]
department = "ophthalmology"
message = { zh = "建议眼科。", en = "Eye clinic." }
""", encoding="utf-8")
    assert SymptomGuide.load(path).recommend({"red_eye"}).department == "ophthalmology"
    path.write_text(path.read_text().replace('any = ["red_eye"]', 'any = ["red_eyes"]'), encoding="utf-8")
    with pytest.raises(GuideError, match="rule 'eyes' names unknown symptoms"):
        SymptomGuide.load(path)
