"""The field rehearsal in the suite: the site deployed as docs/technicians.md says, on this machine.

The commands come from the doc's own ``<!-- rehearsal: ... -->`` code blocks (clinicflow/rehearsal.py),
so the doc cannot drift from what is tested. Debian's Mosquitto starts as root and drops to user
``mosquitto``, as Debian's unit starts it; the server and every device run from the units that
``server-units`` and ``provision`` wrote. ``scripts/field-rehearsal.sh`` runs the same steps.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinicflow.broker import MosquittoBroker
from clinicflow.rehearsal import Rehearsal, doc_commands

pytestmark = [
    pytest.mark.skipif(not MosquittoBroker.available(), reason="needs Debian's mosquitto"),
    pytest.mark.skipif(os.geteuid() != 0, reason="Mosquitto must start as root to drop to user mosquitto, as on Debian"),
    pytest.mark.timeout(240),
]


def test_the_doc_blocks_are_commands_the_rehearsal_can_run():
    blocks = doc_commands()
    assert {"server", "devices", "provision", "one-more"} <= set(blocks)
    assert all(words[0] == "sudo" for block in blocks.values() for words in block)  # root on the server and the Pi
    assert any(words[1:3] == ["clinicflow", "broker-config"] for words in blocks["server"])


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory user mosquitto can enter (pytest's own temp tree is 0700 root, like a careless data dir)."""
    path = Path(tempfile.mkdtemp(prefix="clinicflow-rehearsal-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_site_deployed_as_the_docs_say_comes_up_on_tls_and_stays_up(work):
    out = io.StringIO()
    results = {r.name: r for r in Rehearsal(work, out=out).run()}
    report = out.getvalue()
    failed = {name: r.detail for name, r in results.items() if not r.ok}
    assert not failed, report
    assert len(results) == 12, report  # every step ran (a critical failure stops the rest)
