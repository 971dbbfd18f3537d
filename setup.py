"""Packaging for clinicflow: one distribution, one ``clinicflow`` console script, extras by role.

    pip install .[server]            the queue server (add [postgres] for PostgreSQL)
    pip install .[kiosk]             a self-service kiosk
    pip install .[display]           a door screen or hall board
    pip install .[buttonbox]         a clinician's button box
    pip install .[demo]              everything the one-machine demo runs (with the embedded broker)

The pins live in requirements.txt, each tagged with its extras (``# [kiosk,display]``); untagged
pins are every role's. ``pip install -r requirements.txt`` (scripts/setup.sh) still installs all.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
TAG = re.compile(r"#\s*\[([\w,\s-]+)\]")


def pins(name: str) -> list[tuple[str, list[str]]]:
    """(requirement, extras) for each pin of a requirements file; extras [] means every role."""
    found = []
    for line in (HERE / name).read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if not requirement or requirement.startswith("-r"):
            continue
        tag = TAG.search(line)
        found.append((requirement, [t.strip() for t in tag[1].split(",")] if tag else []))
    return found


RUNTIME = pins("requirements.txt")
EXTRAS: dict[str, list[str]] = {}
for requirement, extras in RUNTIME:
    for extra in extras:
        EXTRAS.setdefault(extra, []).append(requirement)
# The demo runs server, kiosk and call screen on one machine, with amqtt where Mosquitto is missing.
EXTRAS["demo"] = sorted({r for e in ("server", "kiosk", "display", "demo") for r in EXTRAS.get(e, [])})
EXTRAS["all"] = [requirement for requirement, _ in RUNTIME]
EXTRAS["test"] = EXTRAS["all"] + [requirement for requirement, _ in pins("requirements-test.txt")]

setup(
    name="clinicflow",
    version="0.1.0",
    description="Open-source firmware for hospital self-service kiosks and waiting-room call screens",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["protocol*", "queueserver*", "kiosk*", "display*", "hardware*", "config*", "clinicflow*"]),
    include_package_data=True,
    package_data={"": ["*.kv", "*.html", "*.js", "*.css", "*.toml", "*.json", "*.wav", "*.po", "*.mo", "*.pdf", "*.ini", "*.mako", "*.yaml", "*.png"]},
    install_requires=[requirement for requirement, extras in RUNTIME if not extras],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["clinicflow=clinicflow.cli:main"]},
)
