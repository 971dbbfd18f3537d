"""Shared test set-up. Fixture modules named ``tests/fixtures_*.py`` are loaded automatically,
so each part of the system keeps its own fixtures in its own file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = sorted(f"tests.{p.stem}" for p in Path(__file__).parent.glob("fixtures_*.py"))

# Kivy reads these at import time: keep its config and logs out of the user's home.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_HOME", str(ROOT / "test-artifacts" / "kivy-home"))
Path(os.environ["KIVY_HOME"]).mkdir(parents=True, exist_ok=True)  # a fresh clone has no test-artifacts/ yet

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save screenshots, printed PDFs and receipts for a person to review."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
