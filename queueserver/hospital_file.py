"""The hospital file: site, departments, rooms, clinicians and calling rules, in TOML.

Loaded once at start (``load_hospital``) and validated with pydantic; every problem is
reported as ``key: what is wrong. Fix: ...`` so the person at the server can correct the
file without reading code. The shipped demo is ``queueserver/demo_hospital.toml``.
"""
from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocol.errors import ClinicflowError

DEMO_HOSPITAL = Path(__file__).with_name("demo_hospital.toml")

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# Names per language, with the language codes and sizes the MQTT payloads accept (protocol.payloads.LanguageTexts):
# a name the screens' snapshots would refuse must be refused here, not when a room is drawn.
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
Names = Annotated[dict[Language, Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=1, max_length=8)]


MapFile = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}\.png$", description='"floor2.png"')]
MAX_MAP_BYTES = 256 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAPS_DIR = "maps"
"""Where the server keeps the floor maps it serves, under its data directory (``install_maps``)."""


class HospitalFileError(ClinicflowError, ValueError):
    """A hospital file that cannot be read or does not validate; ``problems`` lists each one."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rules(_Strict):
    """How the next patient is chosen, and the limits of the room operations (see docs/queue-rules.md)."""

    priority_ratio: int = Field(2, ge=1, le=20, description="one priority patient for every N others")
    priority_groups: tuple[str, ...] = ("elderly", "pregnant", "disabled")
    elderly_age: int = Field(65, ge=50, le=120)
    checkin_opens_before_min: int = Field(60, ge=0, le=24 * 60, description="how early an appointment may check in")
    late_grace_min: int = Field(15, ge=0, le=240, description="lateness after slot start that keeps the place")
    ageing_bound_min: int = Field(60, ge=5, le=24 * 60, description="nobody waits longer because others outrank them")
    max_recalls: int = Field(3, ge=0, le=10)
    recall_min_interval_s: int = Field(20, ge=0, le=600)
    call_next_confirm_s: int = Field(5, ge=0, le=60, description="a clinician's call-next this soon after their "
                                     "previous call in the room needs a confirmation (0: never)")
    no_show_skip_min: int = Field(5, ge=0, le=240, description="a no-show is callable again after this long")
    no_show_cancel_after: int = Field(2, ge=1, le=10, description="cancelled at this many no-shows")
    long_wait_alert_min: int = Field(30, ge=1, le=24 * 60)
    default_service_min: float = Field(8.0, gt=0, le=240, description="service time assumed before any is measured")

    @field_validator("priority_groups")
    @classmethod
    def _known_groups(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(groups) - {"elderly", "pregnant", "disabled"})
        if unknown:
            raise ValueError(f"unknown priority group(s) {', '.join(unknown)}")
        return groups


class Location(_Strict):
    """Where a room or a department's waiting area is, for tickets, calls and the phone page."""

    building: Names | None = None
    floor: Annotated[str, Field(min_length=1, max_length=8)] | None = Field(None, description='"2", "B1", "G"')
    directions: Names | None = Field(None, description="from the lifts or the entrance, per language")
    map: MapFile | None = Field(None, description="a small floor map: a PNG file beside the hospital file "
                                "(at most 256 KB), shown on the kiosk's ticket screen and the phone status page")

    def texts(self) -> dict[str, str]:
        """One line per language: "门诊楼 2 楼，出电梯左转" / "Outpatient building, floor 2, left from the lifts"."""
        langs = set(self.building or {}) | set(self.directions or {}) | ({"zh", "en"} if self.floor else set())
        out = {}
        for lang in sorted(langs):
            zh_like = lang in ("zh", "yue")
            building = _pick(self.building, lang)
            floor = (f"{self.floor} 楼" if zh_like else f"floor {self.floor}") if self.floor else ""
            head = " ".join(p for p in (building, floor) if p) if zh_like else ", ".join(p for p in (building, floor) if p)
            way = _pick(self.directions, lang)
            out[lang] = ("，" if zh_like else ", ").join(p for p in (head, way) if p)
        return {k: v for k, v in out.items() if v}


def _pick(texts: dict[str, str] | None, lang: str) -> str:
    if not texts:
        return ""
    return texts.get(lang) or (texts.get("zh") if lang == "yue" else None) or texts.get("en") or ""


class Department(_Strict):
    id: Ident
    prefix: Annotated[str, Field(pattern=r"^[A-Z]{1,3}$")]
    name: Names
    slot_minutes: int = Field(15, ge=5, le=120)
    daily_capacity: int | None = Field(None, ge=1, le=99999, description="walk-in tickets a day; none: no limit "
                                       "(numbers get a fourth digit after 999)")
    opens: time = time(0, 0)
    closes: time | None = Field(None, description="none: open until midnight")
    # Booking offers slots in clinic hours only, even where the department takes walk-ins round the clock.
    booking_opens: time | None = Field(None, description="first bookable slot; none: when the department opens")
    booking_closes: time | None = Field(None, description="end of the last bookable slot; none: when it closes")
    emergency: bool = Field(False, description="every ticket of this department is an emergency")
    location: Location | None = Field(None, description="its waiting area: shown on tickets before a room is known")


class Room(_Strict):
    id: Ident
    name: Names
    departments: tuple[Ident, ...] = Field(min_length=1)
    location: Location | None = Field(None, description="building, floor and the way there")

    def where(self) -> dict[str, str]:
        """The room's location per language ({} when the hospital file gives none)."""
        return self.location.texts() if self.location else {}


class Clinician(_Strict):
    id: Ident
    name: str = ""
    rooms: tuple[Ident, ...] = Field(min_length=1)


class Site(_Strict):
    id: Ident
    name: Names = {"en": "Hospital"}
    timezone: str = "Asia/Shanghai"
    sms_reminders: bool = Field(False, description="the hospital sends booking reminders by SMS")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Hospital(_Strict):
    """One site's queue configuration."""

    site: Site
    rules: Rules = Rules()
    departments: tuple[Department, ...] = Field(min_length=1)
    rooms: tuple[Room, ...] = Field(min_length=1)
    clinicians: tuple[Clinician, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> "Hospital":
        problems = []
        for kind, items in (("department", self.departments), ("room", self.rooms), ("clinician", self.clinicians)):
            ids = [i.id for i in items]
            for dup in sorted({i for i in ids if ids.count(i) > 1}):
                problems.append(f"{kind} id {dup!r} is used twice")
        prefixes = [d.prefix for d in self.departments]
        for dup in sorted({p for p in prefixes if prefixes.count(p) > 1}):
            problems.append(f"ticket prefix {dup!r} is used by two departments")
        dept_ids = {d.id for d in self.departments}
        room_ids = {r.id for r in self.rooms}
        for room in self.rooms:
            for dept in room.departments:
                if dept not in dept_ids:
                    problems.append(f"room {room.id!r} serves unknown department {dept!r}")
        for clin in self.clinicians:
            for room_id in clin.rooms:
                if room_id not in room_ids:
                    problems.append(f"clinician {clin.id!r} works in unknown room {room_id!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    def department(self, dept_id: str) -> Department | None:
        return next((d for d in self.departments if d.id == dept_id), None)

    def room(self, room_id: str) -> Room | None:
        return next((r for r in self.rooms if r.id == room_id), None)

    def rooms_for(self, dept_id: str) -> list[Room]:
        return [r for r in self.rooms if dept_id in r.departments]

    def maps(self) -> dict[str, str]:
        """Floor map file -> the first key naming it ("rooms.r1.location.map")."""
        named: dict[str, str] = {}
        for kind, items in (("departments", self.departments), ("rooms", self.rooms)):
            for item in items:
                if item.location is not None and item.location.map:
                    named.setdefault(item.location.map, f"{kind}.{item.id}.location.map")
        return named


def check_maps(hospital: Hospital, folder: Path) -> dict[str, bytes]:
    """Read every floor map the hospital names from ``folder``; HospitalFileError names each one that is
    missing, too large or not a PNG."""
    found, problems = {}, []
    for name, key in hospital.maps().items():
        try:
            data = (folder / name).read_bytes()
        except OSError as exc:
            problems.append(f"{key}: cannot read {folder / name}: {exc.strerror}. Fix: put the PNG beside the "
                            "hospital file, or remove the key")
            continue
        if not data.startswith(PNG_SIGNATURE):
            problems.append(f"{key}: {name} is not a PNG image. Fix: save the map as PNG")
        elif len(data) > MAX_MAP_BYTES:
            problems.append(f"{key}: {name} is {len(data) // 1024} KB. Fix: a map of at most "
                            f"{MAX_MAP_BYTES // 1024} KB (fewer colours, about 600 px wide) loads fast on a phone")
        else:
            found[name] = data
    if problems:
        raise HospitalFileError(f"{folder} floor maps are not valid:\n  " + "\n  ".join(problems), problems)
    return found


def install_maps(hospital: Hospital, folder: Path, data_dir: Path) -> list[str]:
    """Copy the hospital's floor maps from ``folder`` (beside its file) to ``data_dir/maps``, where every
    server process serves them from; returns their names. Raises HospitalFileError like ``check_maps``."""
    target = data_dir / MAPS_DIR
    maps = check_maps(hospital, folder)
    if maps:
        target.mkdir(parents=True, exist_ok=True)
    for name, data in maps.items():
        tmp = target / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target / name)
    return sorted(maps)


def parse_hospital(data: dict, *, source: str = "hospital file") -> Hospital:
    """Validate a parsed hospital file; raise HospitalFileError naming every bad key."""
    try:
        return Hospital.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            problems.append(f"{loc}: {msg}{shown}")
        raise HospitalFileError(f"{source} is not valid:\n  " + "\n  ".join(problems), problems) from None


def load_hospital(path: str | Path | None = None) -> Hospital:
    """Read and validate a hospital TOML file (default: the shipped demo hospital)."""
    path = Path(path or DEMO_HOSPITAL)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HospitalFileError(f"cannot read hospital file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HospitalFileError(f"{path} is not valid TOML: {exc}") from None
    return parse_hospital(data, source=str(path))  # its floor maps are read when a server starts (install_maps)
