"""A real ``clinicflow server`` process per test: free port, temp SQLite file, the session Mosquitto.

    def test_something(queue_server):
        kiosk = queue_server.client("kiosk")          # httpx.Client with the kiosk's bearer token
        r = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"})
        queue_server.kill(); queue_server.start()     # SIGKILL, then the same server again (same db, port)

``queue_server`` has ``.base_url``, ``.site``, ``.tokens`` (name -> token: ``kiosk``, ``display``,
``admin``, ``clinician`` (every room), ``clinician:zhou`` (r1), ``clinician:sun`` (r3)),
``.db_path``, ``.data_dir``, ``.broker_url``, ``.log_path``, ``.client(name)``, ``.kill()`` (SIGKILL),
``.stop()`` (SIGTERM), ``.start()``. ``queue_server_factory(**options)`` starts more servers
(another broker with ``broker_url=``, ``hospital=`` a TOML path, ``extra_args=[...]``);
``module_queue_server`` is one server for all tests of a module.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from queueserver.process import QueueServerProcess

if TYPE_CHECKING:
    from queueserver.store import Store

__all__ = ["DEMO_HOSPITAL", "QueueServerProcess", "copy_demo_maps", "daytime_hospital", "daytime_zone", "module_queue_server", "queue_server", "queue_server_factory", "sqlite_store"]

DEMO_HOSPITAL = Path(__file__).resolve().parent.parent / "queueserver" / "demo_hospital.toml"


def daytime_zone(hour: int = 11) -> ZoneInfo:
    """A fixed-offset zone where it is now ``hour`` o'clock (give or take an hour).

    The demo hospital lays today's appointments around "now" (one late by two hours, one due in 90
    minutes): near midnight those fall on another day. Tests whose story is a day at the clinic run the
    hospital in this zone, so they tell the same story whenever the suite runs; kiosk and server still
    share one UTC clock, only the hospital's wall clock moves.
    """
    offset = (hour - datetime.now(timezone.utc).hour) % 24
    offset = offset - 24 if offset > 14 else offset  # Etc/GMT zones span UTC-12 .. UTC+14
    return ZoneInfo(f"Etc/GMT{-offset:+d}")  # POSIX sign: Etc/GMT-8 is UTC+8


def daytime_hospital(path: Path, zone: ZoneInfo, text: str | None = None) -> Path:
    """Write the demo hospital file (or ``text``) to ``path`` with its site in ``zone``; returns ``path``."""
    source = DEMO_HOSPITAL.read_text(encoding="utf-8") if text is None else text
    assert 'timezone = "Asia/Shanghai"' in source
    path.write_text(source.replace('timezone = "Asia/Shanghai"', f'timezone = "{zone.key}"'), encoding="utf-8")
    copy_demo_maps(path.parent)
    return path


def copy_demo_maps(folder: Path) -> None:
    """Put the demo hospital's floor maps beside a copy of its file (a server refuses a file whose maps are missing)."""
    for png in DEMO_HOSPITAL.parent.glob("demo_floor*.png"):
        shutil.copy(png, folder / png.name)


@pytest.fixture
def queue_server_factory(tmp_path_factory: pytest.TempPathFactory,
                         mosquitto) -> Iterator[Callable[..., QueueServerProcess]]:
    """Start servers with options (``broker_url``, ``hospital``, ``site``, ``extra_args``, ``data_dir``);
    all stopped after."""
    started: list[QueueServerProcess] = []

    def make(**options: object) -> QueueServerProcess:
        data_dir = options.pop("data_dir", None) or tmp_path_factory.mktemp("queue-server")
        broker_url = str(options.pop("broker_url", mosquitto.url))
        server = QueueServerProcess(Path(str(data_dir)), broker_url, **options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def queue_server(queue_server_factory: Callable[..., QueueServerProcess]) -> QueueServerProcess:
    """A real queue server for the demo hospital on the session's Mosquitto (see the module docstring)."""
    return queue_server_factory()


@pytest.fixture(scope="module")
def module_queue_server(tmp_path_factory: pytest.TempPathFactory, mosquitto) -> Iterator[QueueServerProcess]:
    """One demo-hospital server shared by a module's tests (each changes only what it made itself)."""
    server = QueueServerProcess(tmp_path_factory.mktemp("module-server"), mosquitto.url).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator["Store"]:
    """The queue store on a fresh SQLite file, migrated (no server process)."""
    from queueserver.store import Store

    store = Store(str(tmp_path / "queue.sqlite3"))
    store.migrate()
    yield store
    store.dispose()


POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test run's own on the local PostgreSQL (127.0.0.1:5432, trust), dropped afterwards.

    Skips when no PostgreSQL answers (the SQLite tests still run).
    """
    import uuid

    from sqlalchemy import create_engine, text

    name = f"clinicflow_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        admin.dispose()
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc.__class__.__name__}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> str:
    """A fresh schema in the run's PostgreSQL database, as a URL whose search_path points at it."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{postgres_url}?options=-csearch_path%3D{schema}"
