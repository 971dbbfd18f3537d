"""The symptom guide for walk-ins who do not know which department to choose.

The rules are data the hospital edits (``kiosk/symptom_guide.toml`` by default, or the file
given with ``clinicflow kiosk --symptom-guide``), never code: body areas, the symptoms under
each (picked from icons, never typed), and rules checked in order. A rule matches when all
its ``all`` symptoms and at least one of its ``any`` symptoms (if given) are picked and the
age fits; the first match wins. A rule with ``red_flag = true`` never leads to an ordinary
queue: staff are alerted at once and the patient is told what to do now, by its ``action``:
``emergency`` (go to the emergency department now) or ``nurse`` (stay here, a nurse comes:
the chest-pain pathway). Every red flag names the triage reference it follows (``triage``).
Rules are validated on load with errors that name the rule and the problem.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import ClinicflowError

DEFAULT_GUIDE = Path(__file__).parent / "symptom_guide.toml"
RED_FLAG_ACTIONS = ("emergency", "nurse")


class GuideError(ClinicflowError, ValueError):
    """The symptom guide file is not valid; the message says where and why."""


@dataclass(frozen=True)
class Area:
    id: str
    icon: str
    name: dict[str, str]


@dataclass(frozen=True)
class Symptom:
    id: str
    area: str
    icon: str
    name: dict[str, str]


@dataclass(frozen=True)
class Rule:
    id: str
    department: str
    all: frozenset[str]
    any: frozenset[str]
    red_flag: bool
    min_age: int | None
    max_age: int | None
    message: dict[str, str]
    action: str = ""  # red flags: "emergency" or "nurse"
    triage: str = ""  # red flags: the triage reference the rule follows

    def matches(self, picked: set[str], age: int | None) -> bool:
        if not self.all <= picked or (self.any and not self.any & picked):
            return False
        if age is not None and self.min_age is not None and age < self.min_age:
            return False
        if age is not None and self.max_age is not None and age > self.max_age:
            return False
        if age is None and (self.min_age is not None or self.max_age is not None):
            return False
        return True


@dataclass(frozen=True)
class Recommendation:
    department: str
    red_flag: bool
    rule_id: str
    message: dict[str, str]
    action: str = ""  # red flags: "emergency" (go now) or "nurse" (stay here, a nurse comes)
    triage: str = ""

    def staff_alert(self) -> str:
        """What the staff alert says about a red flag (at most 200 characters)."""
        return f"{self.rule_id}: {self.action}; {self.triage}"[:200]


class SymptomGuide:
    """Areas, symptoms and rules loaded from a TOML file."""

    def __init__(self, areas: list[Area], symptoms: list[Symptom], rules: list[Rule], fallback: str) -> None:
        self.areas = areas
        self.symptoms = symptoms
        self.rules = rules
        self.fallback = fallback

    @classmethod
    def load(cls, path: Path | str = DEFAULT_GUIDE) -> "SymptomGuide":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GuideError(f"cannot read the symptom guide {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "symptom guide") -> "SymptomGuide":
        def names(obj: dict, where: str) -> dict[str, str]:
            name = obj.get("name") or obj.get("message")
            if not isinstance(name, dict) or not name.get("zh") or not name.get("en"):
                raise GuideError(f"{source}: {where} needs a name in zh and en")
            return {str(k): str(v) for k, v in name.items()}

        try:
            areas = [Area(a["id"], a.get("icon", a["id"]), names(a, f"area {a['id']!r}")) for a in data.get("areas", [])]
            area_ids = {a.id for a in areas}
            symptoms = []
            for s in data.get("symptoms", []):
                if s["area"] not in area_ids:
                    raise GuideError(f"{source}: symptom {s['id']!r} names an unknown area {s['area']!r}")
                symptoms.append(Symptom(s["id"], s["area"], s.get("icon", s["id"]), names(s, f"symptom {s['id']!r}")))
            known = {s.id for s in symptoms}
            rules = []
            for r in data.get("rules", []):
                rid = r["id"]
                wanted = set(r.get("all", [])) | set(r.get("any", []))
                if not wanted:
                    raise GuideError(f"{source}: rule {rid!r} names no symptoms")
                if unknown := wanted - known:
                    raise GuideError(f"{source}: rule {rid!r} names unknown symptoms {sorted(unknown)}")
                red_flag = bool(r.get("red_flag", False))
                action, triage = str(r.get("action", "")), str(r.get("triage", "")).strip()
                if red_flag and action not in RED_FLAG_ACTIONS:
                    raise GuideError(f"{source}: red flag {rid!r} needs action = one of {', '.join(RED_FLAG_ACTIONS)}")
                if red_flag and not triage:
                    raise GuideError(f"{source}: red flag {rid!r} needs triage = the triage reference it follows")
                rules.append(Rule(rid, r["department"], frozenset(r.get("all", [])), frozenset(r.get("any", [])),
                                  red_flag, r.get("min_age"), r.get("max_age"), names(r, f"rule {rid!r}"),
                                  action, triage))
            fallback = data.get("fallback_department", "internal")
        except KeyError as exc:
            raise GuideError(f"{source}: an entry lacks the key {exc.args[0]!r}") from None
        # Red flags are checked before anything else, wherever they stand in the file.
        rules.sort(key=lambda r: not r.red_flag)
        return cls(areas, symptoms, rules, fallback)

    def symptoms_in(self, area: str) -> list[Symptom]:
        return [s for s in self.symptoms if s.area == area]

    def symptom(self, symptom_id: str) -> Symptom:
        return next(s for s in self.symptoms if s.id == symptom_id)

    def recommend(self, picked: set[str], age: int | None = None) -> Recommendation:
        for rule in self.rules:
            if rule.matches(picked, age):
                return Recommendation(rule.department, rule.red_flag, rule.id, rule.message, rule.action, rule.triage)
        return Recommendation(self.fallback, False, "fallback",
                              {"zh": "建议先看内科，医生会为您安排。", "en": "Start with internal medicine; the doctor will refer you."})
