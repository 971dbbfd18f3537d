"""The hospital file (TOML) and the schema migrations: clear errors, and a store that upgrades in place."""
from __future__ import annotations

import sqlite3
import tomllib

import pytest

from queueserver.hospital_file import DEMO_HOSPITAL, HospitalFileError, install_maps, load_hospital, parse_hospital
from queueserver.store import Store

GOOD = DEMO_HOSPITAL.read_text(encoding="utf-8")


def test_the_demo_hospital_has_the_shared_departments_and_rooms():
    h = load_hospital()
    assert h.site.id == "demo" and h.site.timezone == "Asia/Shanghai"
    assert {d.id: d.prefix for d in h.departments} == {"internal": "A", "surgery": "B", "pediatrics": "C",
                                                       "emergency": "E"}
    assert {r.id: r.departments for r in h.rooms} == {"r1": ("internal",), "r2": ("internal",), "r3": ("surgery",),
                                                      "r4": ("pediatrics",), "r9": ("emergency",)}
    assert h.room("r3").name == {"zh": "3 诊室", "en": "room 3"}


@pytest.mark.parametrize("change, expected", [
    (("priority_ratio = 2", "priority_ratio = 0"),
     "rules.priority_ratio: Input should be greater than or equal to 1 (got 0)"),
    (('prefix = "B"', 'prefix = "A"'), "ticket prefix 'A' is used by two departments"),
    (('departments = ["surgery"]', 'departments = ["surgry"]'), "room 'r3' serves unknown department 'surgry'"),
    (('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"'), "site.timezone: unknown time zone 'Mars/Olympus'"),
    (("elderly_age = 65", "elderly_age = 65\nfavourite_colour = 3"),
     "rules.favourite_colour: Extra inputs are not permitted"),
    (('priority_groups = ["elderly", "pregnant", "disabled"]', 'priority_groups = ["vip"]'),
     "unknown priority group(s) vip"),
    (('floor = "3", directions', 'flor = "3", directions'), "departments.1.location.flor: Extra inputs are not permitted"),
    (('floor = "3", directions', 'floor = "", directions'), "departments.1.location.floor: String should have at least 1"),
])
def test_a_bad_hospital_file_names_the_key_and_the_problem(tmp_path, change, expected):
    path = tmp_path / "hospital.toml"
    path.write_text(GOOD.replace(*change, 1), encoding="utf-8")
    with pytest.raises(HospitalFileError) as err:
        load_hospital(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_broken_toml_and_missing_file_are_reported_plainly(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\nid = 1")
    with pytest.raises(HospitalFileError, match="is not valid TOML"):
        load_hospital(broken)
    with pytest.raises(HospitalFileError, match="cannot read hospital file"):
        load_hospital(tmp_path / "nope.toml")


def test_floor_maps_are_checked_and_copied_where_the_server_serves_them(tmp_path):
    hospital = load_hospital(DEMO_HOSPITAL)
    assert hospital.room("r1").location.map == "demo_floor2.png" and hospital.room("r4").location.map is None
    assert install_maps(hospital, DEMO_HOSPITAL.parent, tmp_path) == ["demo_floor2.png", "demo_floor3.png"]
    assert (tmp_path / "maps" / "demo_floor3.png").read_bytes() == (DEMO_HOSPITAL.parent / "demo_floor3.png").read_bytes()
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / "demo_floor2.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(HospitalFileError) as err:  # a copy of the file without its maps, or a map in another format
        install_maps(hospital, elsewhere, tmp_path / "data")
    assert err.value.problems[0].startswith("departments.internal.location.map: demo_floor2.png is not a PNG")
    assert err.value.problems[1].startswith("departments.surgery.location.map: cannot read")
    with pytest.raises(HospitalFileError, match="location.map: String should match pattern"):  # no paths
        parse_hospital(tomllib.loads(GOOD.replace('map = "demo_floor3.png"', 'map = "../secret.png"', 1)))


def test_server_refuses_to_start_on_a_bad_hospital_file(tmp_path, capsys):
    from queueserver.cli import main

    path = tmp_path / "hospital.toml"
    path.write_text(GOOD.replace('id = "r4"', 'id = "r3"'), encoding="utf-8")
    assert main(["--hospital", str(path), "--data-dir", str(tmp_path), "--broker", "none"]) == 2
    assert "room id 'r3' is used twice" in capsys.readouterr().err


def test_migrations_create_the_schema_and_are_idempotent(tmp_path):
    db = tmp_path / "q.sqlite3"
    store = Store(str(db))
    store.migrate()
    store.migrate()  # a restart migrates nothing twice
    store.dispose()
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"qs_rooms", "qs_tickets", "qs_calls", "qs_counters", "qs_idempotency", "qs_changes",
            "alembic_version"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from queueserver.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
