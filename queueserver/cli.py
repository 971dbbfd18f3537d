"""``clinicflow server``: the queue server's composition root.

Reads the hospital file, opens (and migrates) the store, opens the hospital backend (the
embedded SQLite one, seeded with the demo hospital when empty), creates the role tokens,
connects to the MQTT broker and serves the API and pages with uvicorn.

    clinicflow server --data-dir /var/lib/clinicflow --broker mqtt://127.0.0.1:1883
"""
from __future__ import annotations

import argparse
import errno
import gc
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger("queueserver")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinicflow server", description="Run the central queue server.")
    p.add_argument("--data-dir", default=os.environ.get("CLINICFLOW_DATA_DIR", "clinicflow-data"),
                   help="where the database, tokens.json and report PDFs live (default: ./clinicflow-data)")
    p.add_argument("--db", default=os.environ.get("CLINICFLOW_DB"),
                   help="SQLite file (default: DATA_DIR/queue.sqlite3) or a database URL such as "
                        "postgresql+psycopg://user@host/dbname (env CLINICFLOW_DB: keeps a password off the "
                        "command line)")
    p.add_argument("--his-db", help="SQLite file of the embedded hospital backend (default: DATA_DIR/hospital.sqlite3; "
                                    "a file of its own, so its writes never wait for the queue's)")
    p.add_argument("--broker", default=os.environ.get("CLINICFLOW_BROKER", "mqtt://127.0.0.1:1883"),
                   help="MQTT broker URL (mqtt://host:port or mqtts://user:pass@host:port); 'none' to run without "
                        "(env CLINICFLOW_BROKER: keeps a password off the command line)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--site", help="site id used in MQTT topics (default: the hospital file's site id)")
    p.add_argument("--hospital", help="hospital TOML file (default: the shipped demo hospital)")
    p.add_argument("--public-url", help="base URL patients' phones reach, used in ticket QR codes "
                                        "(default: http://HOST:PORT)")
    p.add_argument("--no-seed", action="store_true", help="do not seed the demo patients into an empty backend")
    p.add_argument("--announce-window", type=int, default=int(os.environ.get("CLINICFLOW_ANNOUNCE_WINDOW", "10")),
                   metavar="S", help="a call is spoken by screens only within S seconds of being made (default 10; "
                                     "docs/protocol.md)")
    p.add_argument("--alert-interval", type=float, default=15.0, help="seconds between long-wait checks (0: off)")
    p.add_argument("--http-workers", default=os.environ.get("CLINICFLOW_HTTP_WORKERS", "auto"), metavar="N",
                   help="serve HTTP from N worker processes while this process runs the queue; 0: all in one "
                        "process; auto (default): 1 with two or more CPU cores, else 0 (docs/api.md)")
    p.add_argument("--https", action="store_true",
                   help="serve HTTPS with a certificate from the site CA of `clinicflow broker-config` "
                        "(DATA_DIR/https; docs/api.md says how staff machines trust the CA)")
    p.add_argument("--https-name", action="append", default=[], metavar="NAME",
                   help="a name or address staff use to reach the server, for the certificate (repeat; "
                        "default: this machine's names, localhost and --host)")
    p.add_argument("--ca-dir", help="where the site CA is (default DATA_DIR/broker)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM; with --tls-key) instead")
    p.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def tls_files(args: argparse.Namespace, data_dir: Path) -> tuple[str, str] | None:
    """(certificate, key) to serve HTTPS with, or None for plain HTTP."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("clinicflow server: --tls-cert and --tls-key go together")
    if args.tls_cert:
        return args.tls_cert, args.tls_key
    if not args.https and not args.https_name:
        return None
    from queueserver.tls_serving import HttpsSetupError, default_names, server_certificate

    try:
        files = server_certificate(data_dir, ca_dir=Path(args.ca_dir) if args.ca_dir else None,
                                   names=args.https_name or default_names(args.host))
    except HttpsSetupError as exc:
        raise SystemExit(f"clinicflow server: {exc}") from None
    return str(files.cert), str(files.key)


def listen(host: str, port: int, *, wait: float = 3.0) -> socket.socket:
    """The server's listening TCP socket (``--host ::`` listens on IPv6, and IPv4 where dual-stack).

    A port still held is retried for ``wait`` seconds: right after a crash the old server's HTTP
    worker may take a moment to be ended by the kernel.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_server((host, port), family=family, backlog=2048,
                                        dualstack_ipv6=family == socket.AF_INET6 and socket.has_dualstack_ipv6())
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def http_workers(value: str) -> int:
    """``--http-workers``: a count, or ``auto``. The queue core keeps one core busy and HTTP in a worker
    process takes the second; on a quiet 2-core machine this measured faster on SQLite and on
    PostgreSQL alike (docs/api.md, "Measured throughput")."""
    if value == "auto":
        return 1 if (os.cpu_count() or 1) >= 2 else 0
    try:
        count = int(value)
    except ValueError:
        raise SystemExit(f"clinicflow server: --http-workers takes a number or 'auto', not {value!r}") from None
    if count < 0:
        raise SystemExit("clinicflow server: --http-workers cannot be negative")
    return count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from queueserver.auth import TokenBook
    from queueserver.hospital.embedded import EmbeddedHospitalBackend
    from queueserver.hospital_file import DEMO_HOSPITAL, HospitalFileError, install_maps, load_hospital, parse_hospital
    from queueserver.publisher import MqttPublisher, server_bus
    from queueserver.service import QueueService
    from queueserver.store import Store

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    saved = data_dir / "hospital.json"  # written by the admin API; used unless --hospital is given
    try:
        if args.hospital is None and saved.exists():
            hospital = parse_hospital(json.loads(saved.read_text(encoding="utf-8")), source=str(saved))
            log.info("hospital configuration from %s (changed through the admin API)", saved)
        else:
            hospital = load_hospital(args.hospital)
            # floor maps beside the file, copied to DATA_DIR/maps: every HTTP process serves them from there
            install_maps(hospital, Path(args.hospital or DEMO_HOSPITAL).parent, data_dir)
    except (HospitalFileError, ValueError) as exc:
        print(f"clinicflow server: {exc}", file=sys.stderr)
        return 2
    site = args.site or hospital.site.id
    db = args.db or str(data_dir / "queue.sqlite3")
    store = Store(db)
    # Listen before anything connects out (migrations, the HIS, MQTT): an outgoing connection could
    # otherwise be given this very port as its own and the bind fail. Callers wait in the backlog.
    try:
        listener = listen(args.host, args.port)
    except OSError as exc:
        print(f"clinicflow server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    store.migrate()
    from queueserver.store_epoch import EpochReader, renew_epoch

    epoch = renew_epoch(store)  # the content may have been replaced while we were stopped (store_epoch.py)
    log.info("store epoch %s", epoch)
    his_path = args.his_db or str(data_dir / "hospital.sqlite3")
    backend = EmbeddedHospitalBackend(his_path, timezone_name=hospital.site.timezone)
    if not args.no_seed and backend.is_empty():
        from queueserver.hospital.seed import seed_demo

        seed_demo(backend, reports_dir=data_dir / "reports")
        log.info("seeded the demo hospital into %s", his_path)
    tokens = TokenBook.load_or_create(data_dir, hospital)
    tls = tls_files(args, data_dir)
    if tls is not None:  # HTTP worker processes (--http-workers) serve with the same files
        os.environ["CLINICFLOW_TLS_CERT"], os.environ["CLINICFLOW_TLS_KEY"] = tls
    public_url = args.public_url or f"{'https' if tls else 'http'}://{args.host}:{args.port}"

    bus = None
    if args.broker and args.broker != "none":
        bus = server_bus(args.broker, site, instance=uuid.uuid4().hex[:8])
    publisher = None
    if bus is not None:
        publisher = MqttPublisher(bus, site, epoch=EpochReader(store, initial=epoch), rooms=[r.id for r in hospital.rooms],
                                  timezone=hospital.site.timezone, announce_window=args.announce_window)
    service = QueueService(store, hospital, backend, publisher=publisher, public_url=public_url, site=site)
    service.ensure_rooms()

    def on_startup() -> None:
        # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, the app: some 75,000 tracked
        # objects) lives as long as the process; frozen, full collections stop walking it, which cut
        # the p99 latency under load from ~85 ms to ~30 ms (bench/server_throughput.py).
        gc.collect()
        gc.freeze()
        if bus is None:
            return
        # Every (re)connect republishes all snapshots: the first connect is "on start", later ones
        # restore retained state on a broker that restarted without persistence.
        def republish(up: bool) -> None:
            if up:
                threading.Thread(target=service.republish_all, name="republish", daemon=True).start()

        bus.add_connection_listener(republish)
        bus.start()
        if not bus.wait_connected(5):
            log.warning("MQTT broker %s not reachable yet; serving HTTP and retrying in the background", args.broker)

    def on_shutdown() -> None:
        if bus is not None:
            bus.stop()
        backend.close()
        store.dispose()

    workers = http_workers(args.http_workers)
    if workers > 0:
        args.http_workers = workers
        from queueserver.core_process import run_core

        return run_core(service, bus, args, listener, on_startup=on_startup, on_shutdown=on_shutdown,
                        his_path=his_path, republish_interval=0.0 if store.is_sqlite else 30.0)
    import uvicorn  # here, not above: the queue core of --http-workers never loads the web framework

    from queueserver.app import create_app

    app = create_app(service, tokens, on_startup=on_startup, on_shutdown=on_shutdown,
                     alert_interval=args.alert_interval, hospital_path=saved,
                     republish_interval=0.0 if store.is_sqlite else 30.0, data_dir=data_dir)
    app.state.bus = bus
    log.info("clinicflow server for site %s on %s://%s:%s (db %s, broker %s, tokens in %s)", site,
             "https" if tls else "http", args.host, args.port, store.url.split("@")[-1], args.broker,
             data_dir / "tokens.json")
    config = uvicorn.Config(app, log_level=args.log_level if args.log_level != "info" else "warning",
                            access_log=False, timeout_graceful_shutdown=3, lifespan="on",
                            ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)
    uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
