"""Run the real kiosk window (``kiosk.ui.driver`` in a child process under Xvfb) against a real server."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_server import QueueServerProcess

ROOT = Path(__file__).resolve().parent.parent


def run_kiosk_driver(tmp_path_factory, broker_url: str, artifacts: Path, name: str, *driver_args: str) -> dict:  # type: ignore[no-untyped-def]
    """Walk the driver's scenario (``driver_args``) on a fresh server; screenshots go to ``artifacts``.
    Returns the driver's report (shots with their problems, errors)."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: run the suite under xvfb-run")
    server = QueueServerProcess(tmp_path_factory.mktemp(f"{name}-server"), broker_url).start()
    out = tmp_path_factory.mktemp(f"{name}-shots")
    env = dict(os.environ, KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1",
               KIVY_HOME=str(tmp_path_factory.mktemp("kivy-home")), PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kiosk.ui.driver", "--server", server.base_url, "--token=" + server.tokens["kiosk"],
             "--out", str(out), "--report", str(out / "report.json"), *driver_args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    shutil.rmtree(artifacts, ignore_errors=True)
    shutil.copytree(out, artifacts)
    return report
