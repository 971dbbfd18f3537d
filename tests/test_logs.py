"""One line per event in the journal: Kivy's records go through Python logging, printed once."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_kiosk_under_systemd_logs_each_event_once_without_its_own_timestamps(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIVY_")}
    env.update(KIVY_NO_ARGS="1", KIVY_HOME=str(tmp_path / "kivy"), PYTHONPATH=str(ROOT),
               JOURNAL_STREAM="8:12345")  # what systemd sets when stderr is the journal
    done = subprocess.run([sys.executable, "-m", "clinicflow", "kiosk", "--server", "http://127.0.0.1:9",
                           "--token", "t" * 20, "--speaker", "none", "--terminal", "none", "--size", "640x400",
                           "--journal", str(tmp_path / "j.sqlite3"), "--screenshot", str(tmp_path / "home.png")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    kivy_banner = [line for line in lines if re.search(r"Kivy: v\d|\[Kivy\s*\] v\d", line)]
    assert len(kivy_banner) == 1, kivy_banner  # was twice: Kivy's console handler and Python's
    assert len(lines) == len(set(lines)), [line for line in lines if lines.count(line) > 1][:5]
    logged = [line for line in lines if re.match(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line)]
    assert logged and not any(re.match(r"\d{4}-\d\d-\d\d", line) for line in lines)  # the journal stamps time
