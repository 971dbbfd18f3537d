"""Clinical safety of the shipped symptom guide: every red flag, whatever else is picked and at any age,
goes to staff (never an ordinary queue) and names the triage reference it follows."""
from __future__ import annotations

import itertools

import pytest

from kiosk.symptom_guide import GuideError, SymptomGuide

GUIDE = SymptomGuide.load()
RED_FLAGS = [r for r in GUIDE.rules if r.red_flag]
AGES = (None, 4, 30, 70, 95)


def minimal_sets(rule) -> list[set[str]]:
    """Every smallest choice of symptoms that should trigger ``rule``."""
    return [set(rule.all) | ({s} if s else set()) for s in (sorted(rule.any) or [None])]


def test_every_red_flag_names_its_triage_reference_and_what_to_do():
    assert len(RED_FLAGS) >= 6
    for rule in RED_FLAGS:
        assert rule.triage and rule.action in ("emergency", "nurse"), rule.id
        assert rule.department == "emergency", rule.id
        assert rule.message["zh"] and rule.message["en"], rule.id


@pytest.mark.parametrize("rule", RED_FLAGS, ids=lambda r: r.id)
def test_each_red_flag_wins_at_any_age_and_with_anything_else_picked(rule):
    others = [s.id for s in GUIDE.symptoms]
    for picked, age in itertools.product(minimal_sets(rule), AGES):
        for extra in [None, *others]:
            rec = GUIDE.recommend(picked | ({extra} if extra else set()), age)
            assert rec.red_flag, (rule.id, picked, extra, age)  # a red flag, whichever one matched first
        rec = GUIDE.recommend(picked, age)
        assert rec.red_flag and rec.triage and rec.action, (rule.id, picked, age)
        assert rec.staff_alert().startswith(f"{rec.rule_id}: {rec.action}; ")


def test_chest_pain_alone_is_a_nurse_check_on_the_chest_pain_pathway_not_a_queue():
    for age in AGES:
        rec = GUIDE.recommend({"chest_pain"}, age)
        assert rec.red_flag and rec.action == "nurse" and rec.rule_id == "chest_pain"
        assert "ECG" in rec.triage and "10 min" in rec.triage
        assert "心电图" in rec.message["zh"] and "ECG" in rec.message["en"]
    assert GUIDE.recommend({"chest_pain", "cough"}, 50).action == "nurse"
    assert GUIDE.recommend({"chest_pain", "breathless"}, 50).action == "emergency"  # both: emergency now


def test_ordinary_symptoms_still_get_a_department():
    assert not GUIDE.recommend({"cough"}, 40).red_flag
    assert GUIDE.recommend({"cough"}, 40).department == "internal"
    assert GUIDE.recommend({"fever"}, 6).department == "pediatrics"


def test_a_red_flag_without_a_triage_reference_or_action_is_refused(tmp_path):
    base = """
[[areas]]
id = "chest"
name = { zh = "胸部", en = "Chest" }
[[symptoms]]
id = "chest_pain"
area = "chest"
name = { zh = "胸痛", en = "Chest pain" }
[[rules]]
id = "cp"
red_flag = true
all = ["chest_pain"]
department = "emergency"
message = { zh = "急诊。", en = "Emergency." }
"""
    path = tmp_path / "guide.toml"
    path.write_text(base + 'action = "nurse"\n', encoding="utf-8")
    with pytest.raises(GuideError, match="red flag 'cp' needs triage"):
        SymptomGuide.load(path)
    path.write_text(base + 'triage = "MTS chest pain"\n', encoding="utf-8")
    with pytest.raises(GuideError, match="red flag 'cp' needs action"):
        SymptomGuide.load(path)
    path.write_text(base + 'triage = "MTS chest pain"\naction = "nurse"\n', encoding="utf-8")
    assert SymptomGuide.load(path).recommend({"chest_pain"}).action == "nurse"
