"""``clinicflow backup`` and ``clinicflow restore``: the queue server's store and its small files.

    clinicflow backup --data-dir /var/lib/clinicflow --out /srv/backup/clinicflow-$(date +%F).tar
    clinicflow restore /srv/backup/clinicflow-2026-12-03.tar --data-dir /var/lib/clinicflow   # server stopped

A backup is one tar file (mode 0600: it holds the API tokens) with ``manifest.json``, the queue
store and the embedded hospital backend, and ``tokens.json``, ``devices.json``, ``hospital.json``.
SQLite files are copied with SQLite's online backup API, so the server may keep running and the
copy is consistent; a PostgreSQL store is dumped with ``pg_dump --format=custom`` (its password,
if the URL has one, goes through ``PGPASSWORD``, never the command line).

``restore`` checks every SQLite file (``PRAGMA integrity_check``) before it replaces anything,
then puts each file in place atomically (``pg_restore --clean`` for PostgreSQL). Stop the server
first and start it afterwards: the call screens get the restored rooms' states when it republishes,
under the new store epoch every start gives the database (``queueserver/store_epoch.py``), so they
take the restored rooms' lower seqs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from clinicflow.files import atomic_file
from config.registry import data_dir as resolve_data_dir

SMALL_FILES = ("tokens.json", "devices.json", "hospital.json")
QUEUE_DB, HIS_DB = "queue.sqlite3", "hospital.sqlite3"


class BackupError(RuntimeError):
    """The backup or restore could not be done; the message says why and what to do."""


def _is_postgres(db: str) -> bool:
    return db.startswith("postgresql")


def _libpq(db: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy URL as a libpq one without its password, and the environment that carries it."""
    parts = urlsplit(db.replace("postgresql+psycopg://", "postgresql://", 1))
    env = dict(os.environ)
    netloc = parts.netloc
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = netloc.replace(f":{parts.password}@", "@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def backup(data: Path, out: Path, *, db: str | None = None) -> list[str]:
    """Write the backup tar to ``out``; the names it holds."""
    db = db or str(data / QUEUE_DB)
    with tempfile.TemporaryDirectory(prefix="clinicflow-backup-") as tmp:
        staged = Path(tmp)
        names: list[str] = []
        if _is_postgres(db):
            url, env = _libpq(db)
            done = subprocess.run(["pg_dump", "--format=custom", "--file", str(staged / "queue.pgdump"), url],
                                  env=env, capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
            names.append("queue.pgdump")
        else:
            if not Path(db).exists():
                raise BackupError(f"no queue store at {db}. Fix: give the server's --data-dir (or --db)")
            _sqlite_copy(Path(db), staged / QUEUE_DB)
            names.append(QUEUE_DB)
        if (data / HIS_DB).exists():
            _sqlite_copy(data / HIS_DB, staged / HIS_DB)
            names.append(HIS_DB)
        for name in SMALL_FILES:
            if (data / name).exists():
                shutil.copyfile(data / name, staged / name)
                names.append(name)
        manifest = {"v": 1, "kind": "clinicflow-backup", "created": datetime.now(timezone.utc).isoformat(),
                    "store": "postgresql" if _is_postgres(db) else "sqlite", "files": names}
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out) as f, tarfile.open(fileobj=f, mode="w") as tar:  # 0600 from creation
            for name in ["manifest.json", *names]:
                tar.add(staged / name, arcname=name)
    return names


def _check_sqlite(path: Path) -> None:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name} in the backup is not a usable SQLite database ({exc})") from None
    finally:
        con.close()
    if verdict != "ok":
        raise BackupError(f"{path.name} in the backup is damaged: {verdict}")


def _put_in_place(source: Path, target: Path, mode: int) -> None:
    """Replace ``target`` atomically; an SQLite target's old -wal/-shm files go first (they belong to the old file)."""
    partial = target.with_name(f".{target.name}.restore")
    shutil.copyfile(source, partial)
    os.chmod(partial, mode)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(partial, target)


def restore(archive: Path, data: Path, *, db: str | None = None) -> list[str]:
    """Put the backup's files back; the names restored. Nothing is replaced unless every file checks out."""
    db = db or str(data / QUEUE_DB)
    with tempfile.TemporaryDirectory(prefix="clinicflow-restore-") as tmp:
        staged = Path(tmp)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staged, filter="data")
            manifest = json.loads((staged / "manifest.json").read_text())
        except (OSError, tarfile.TarError, ValueError, KeyError) as exc:
            raise BackupError(f"{archive} is not a clinicflow backup ({exc})") from None
        if manifest.get("kind") != "clinicflow-backup":
            raise BackupError(f"{archive} is not a clinicflow backup")
        names = list(manifest["files"])
        wants_pg = "queue.pgdump" in names
        if wants_pg != _is_postgres(db):
            raise BackupError(f"the backup holds a {manifest['store']} store but --db is "
                              f"{'PostgreSQL' if _is_postgres(db) else 'SQLite'}. Fix: give the matching --db")
        for name in names:
            if name.endswith(".sqlite3"):
                _check_sqlite(staged / name)
        data.mkdir(parents=True, exist_ok=True)
        if wants_pg:
            url, env = _libpq(db)
            done = subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", url,
                                   str(staged / "queue.pgdump")], env=env, capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
        else:
            _put_in_place(staged / QUEUE_DB, Path(db), 0o600)
        for name in names:
            if name == HIS_DB:
                _put_in_place(staged / name, data / name, 0o600)
            elif name in SMALL_FILES:
                _put_in_place(staged / name, data / name, 0o600)
    return names


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--data-dir", help="the server's --data-dir (default $CLINICFLOW_DATA_DIR or ./clinicflow-data)")
    p.add_argument("--db", help="the server's --db, if it is not DATA_DIR/queue.sqlite3 (e.g. postgresql+psycopg://...)")
    return p


def backup_main(argv: list[str] | None = None) -> int:
    p = _parser("clinicflow backup", "Back up the queue server's store (it may keep running).")
    p.add_argument("--out", help="the backup file (default DATA_DIR/backups/clinicflow-<UTC time>.tar)")
    args = p.parse_args(argv)
    data = resolve_data_dir(args.data_dir)
    out = Path(args.out) if args.out else data / "backups" / f"clinicflow-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.tar"
    try:
        names = backup(data, out, db=args.db)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    print(f"backup: {out} ({', '.join(names)}); it holds the API tokens: keep it where tokens.json may be")
    return 0


def restore_main(argv: list[str] | None = None) -> int:
    p = _parser("clinicflow restore", "Restore the queue server's store from a backup. Stop the server first.")
    p.add_argument("backup", help="a file written by `clinicflow backup`")
    args = p.parse_args(argv)
    try:
        names = restore(Path(args.backup), resolve_data_dir(args.data_dir), db=args.db)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    print(f"restore: put back {', '.join(names)}; now start the server (systemctl start clinicflow-server)")
    return 0
