"""schemathesis against a live server, once per kind of caller, with every check: 0 failures.

The server's OpenAPI (``/openapi.json``) is what a generated client trusts: every status an
operation answers documented, with the body it has; every schema-valid request accepted and
every schema-invalid one refused with a 4xx; no 5xx; 405s with the right ``Allow``; operations
that need a token refuse calls without one. A fixed seed and a few examples per operation keep
the run reproducible and inside the suite's time (about 40 s for all callers, in parallel).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from queueserver.process import QueueServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")
CALLERS = ("no token", "kiosk", "display", "clinician:zhou", "manager", "admin")
SEED = 20261203
EXAMPLES = 3


@pytest.fixture(scope="module")
def server(module_queue_server: QueueServerProcess) -> QueueServerProcess:
    return module_queue_server


def _run(server: QueueServerProcess, caller: str, report: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               f"{server.base_url}/openapi.json", "--checks", "all", "--seed", str(SEED),
               "--max-examples", str(EXAMPLES), "--workers", "1", "--no-shrink", "--no-color"]
    if caller != "no token":
        command += ["--header", f"Authorization: Bearer {server.tokens[caller]}"]
    # in the report's folder: schemathesis keeps a cache (.schemathesis/) in its working directory
    return subprocess.Popen(command, stdout=report.open("wb"), stderr=subprocess.STDOUT, cwd=report.parent)


def test_schemathesis_finds_no_failure_for_any_caller(server, tmp_path):
    started = time.monotonic()
    runs = {caller: _run(server, caller, tmp_path / f"{caller.replace(':', '-')}.txt") for caller in CALLERS}
    failed = []
    for caller, proc in runs.items():
        code = proc.wait(timeout=240)
        if code != 0:
            failed.append(f"--- as {caller} (exit {code}):\n"
                          + (tmp_path / f"{caller.replace(':', '-')}.txt").read_text(errors="replace")[-6000:])
    print(f"schemathesis, {len(CALLERS)} callers in parallel: {time.monotonic() - started:.1f} s")
    assert not failed, "\n".join(failed)
