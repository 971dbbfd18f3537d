"""Each role installs only its own dependencies (setup.py extras), resolved through every transitive one.

The extras are read from the metadata setup.py builds (``egg_info``, as pip's build step writes it);
their transitive closure is resolved offline from the metadata of the pinned distributions installed
in this environment (the same versions pip would pick from requirements.txt), evaluating markers.
"""
from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SERVER_ONLY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "psycopg-binary", "cryptography",
               "uvloop", "httptools", "matplotlib"}
# babel is shared: the kiosk's screens and the server's staff pages are both translated
DEVICE_ONLY = {"kivy", "pycups", "python-escpos", "pyusb", "evdev", "pyserial"}


@pytest.fixture(scope="module")
def extras(tmp_path_factory) -> dict[str, list[Requirement]]:
    """Extra name -> requirements ("" = install_requires), from the metadata setup.py writes."""
    out = tmp_path_factory.mktemp("meta")
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    sections: dict[str, list[Requirement]] = {"": []}
    current, marker = "", ""
    for line in (out / "clinicflow.egg-info" / "requires.txt").read_text().splitlines():
        if match := re.fullmatch(r"\[(.*)\]", line.strip()):  # [extra] or [extra:marker]
            current, _, marker = match[1].partition(":")
            sections.setdefault(current, [])
        elif line.strip():
            sections[current].append(Requirement(line.strip() + (f"; {marker}" if marker else "")))
    return sections


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution these pull in, transitively (markers evaluated for this Linux machine)."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, wanted = todo.pop()
        if req.marker and not any(req.marker.evaluate({**default_environment(), "extra": e}) for e in (wanted or {""})):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.distribution(name).requires or []:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({**default_environment(), "extra": e})
                                         for e in (set(req.extras) or {""})):
                todo.append((dep, frozenset(dep.extras)))
    return {k.split("[")[0] for k in seen}


def role(extras: dict[str, list[Requirement]], *names: str) -> set[str]:
    return closure(extras[""] + [r for n in names for r in extras[n]])


def test_a_kiosk_or_screen_installs_no_server_package(extras):
    kiosk, display, box = role(extras, "kiosk"), role(extras, "display"), role(extras, "buttonbox")
    assert "kivy" in kiosk and "python-escpos" in kiosk and "kivy" in display  # the resolution is real
    assert "babel" in kiosk  # the check-in screens' translations
    for packages in (kiosk, display, box):
        assert not packages & SERVER_ONLY, packages & SERVER_ONLY
        assert "amqtt" not in packages and "pyttsx3" not in packages


def test_the_server_installs_no_device_package(extras):
    server = role(extras, "server", "postgres")
    assert {"fastapi", "starlette", "sqlalchemy", "psycopg"} <= server  # starlette only arrives through fastapi
    assert {"matplotlib", "babel"} <= server  # the dashboard's plots, the staff pages' translations
    assert not server & DEVICE_ONLY, server & DEVICE_ONLY
    assert "amqtt" not in server and "websockets" not in server


def test_the_embedded_broker_is_only_in_the_demo_and_setup_still_installs_everything(extras):
    assert "amqtt" in role(extras, "demo") and {"kivy", "fastapi"} <= role(extras, "demo")
    pinned = {canonicalize_name(Requirement(line.split("#")[0].strip()).name)
              for line in (ROOT / "requirements.txt").read_text().splitlines() if line.split("#")[0].strip()}
    assert pinned == {canonicalize_name(r.name) for r in extras["all"]}
    assert "req=requirements.txt" in (ROOT / "scripts" / "setup.sh").read_text()  # what it pip-installs with -r
