"""A frozen kiosk UI is restarted: the real kiosk exits with the watchdog's code, so systemd starts it again."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from display.watchdog import STALL_EXIT_CODE

ROOT = Path(__file__).resolve().parent.parent


def test_a_kiosk_whose_ui_thread_hangs_exits_so_systemd_restarts_it(tmp_path):
    # The real composition root; the harness only adds one event handler that never returns (a deadlock).
    code = textwrap.dedent("""
        import sys, time
        from kivy.clock import Clock
        Clock.schedule_once(lambda dt: time.sleep(120), 2.0)
        from kiosk.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    env = dict(os.environ, KIVY_NO_ARGS="1", KIVY_LOG_MODE="PYTHON", KIVY_HOME=str(tmp_path / "kivy"),  # as the unit
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, "--server", "http://127.0.0.1:9", "--token", "t" * 20,
                           "--speaker", "none", "--printer", "fake", "--terminal", "none", "--watchdog", "2",
                           "--journal", str(tmp_path / "journal.sqlite3"), "--size", "640x400"],
                          cwd=ROOT, env=env, capture_output=True, timeout=90)
    assert done.returncode == STALL_EXIT_CODE, done.stderr.decode(errors="replace")[-800:]
    assert b"UI thread stalled" in done.stderr
