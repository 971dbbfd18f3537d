"""``clinicflow backup`` of a running server and ``clinicflow restore``: the tickets of the backup come back."""
from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clinicflow", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _rehearse_restore(server, backup: Path, *db: str) -> None:
    """Check a patient in, back up the running server, check another in, stop, restore, start."""
    kiosk = server.client("kiosk")
    kept = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()["ticket_id"]
    done = _cli("backup", "--data-dir", str(server.data_dir), *db, "--out", str(backup))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # it holds the API tokens
    lost = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1003"}).json()["ticket_id"]
    server.stop()
    done = _cli("restore", str(backup), "--data-dir", str(server.data_dir), *db)
    assert done.returncode == 0, done.stderr
    server.start()
    kiosk = server.client("kiosk")
    assert kiosk.get(f"/api/v1/tickets/{kept}").status_code == 200
    assert kiosk.get(f"/api/v1/tickets/{lost}").status_code == 404  # checked in after the backup


def test_a_sqlite_server_backed_up_while_running_comes_back_as_it_was(queue_server, tmp_path):
    _rehearse_restore(queue_server, tmp_path / "site.tar")
    with tarfile.open(tmp_path / "site.tar") as tar:
        assert {"manifest.json", "queue.sqlite3", "tokens.json"} <= set(tar.getnames())


def test_a_damaged_backup_is_refused_and_nothing_is_replaced(queue_server, tmp_path):
    assert _cli("backup", "--data-dir", str(queue_server.data_dir), "--out", str(tmp_path / "b.tar")).returncode == 0
    queue_server.stop()
    staged = tmp_path / "staged"
    with tarfile.open(tmp_path / "b.tar") as tar:
        tar.extractall(staged, filter="data")
    (staged / "queue.sqlite3").write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for p in staged.iterdir():
            tar.add(p, arcname=p.name)
    before = queue_server.db_path.read_bytes()
    done = _cli("restore", str(tmp_path / "bad.tar"), "--data-dir", str(queue_server.data_dir))
    assert done.returncode == 1 and "queue.sqlite3" in done.stderr
    assert queue_server.db_path.read_bytes() == before


@pytest.mark.skipif(not shutil.which("pg_dump"), reason="needs pg_dump (postgresql-client)")
def test_a_postgresql_server_is_dumped_and_restored(queue_server_factory, postgres_url, tmp_path):
    from sqlalchemy import create_engine, text

    name = f"clinicflow_backup_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        server = queue_server_factory(db=db)
        _rehearse_restore(server, tmp_path / "pg.tar", "--db", db)
        server.stop()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
