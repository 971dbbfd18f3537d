"""One HTTP worker process of ``clinicflow server --http-workers N`` (started by the server, not by hand).

It serves the same FastAPI app as the single-process server, on the listening socket the
queue core hands it (``--fd``), with a ``RemoteQueueService`` in place of the service: every
queue operation and view is carried out by the core over the channel it inherits
(``--channel-fd``, its end of a socketpair; ``queueserver.core_link``). The broker URL comes
over that channel too: no secret is on this process's command line. Bills,
payments and reports are read from the hospital backend directly, and the fleet page keeps
its own MQTT subscription. It exits when the core goes away.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

log = logging.getLogger("queueserver.front")
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker when the core dies, even by SIGKILL (it holds the port)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the core died before prctl took effect
        sys.exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m queueserver.front")
    p.add_argument("--fd", type=int, required=True, help="the listening socket, inherited from the core")
    p.add_argument("--channel-fd", type=int, required=True, help="this worker's end of its channel to the core")
    p.add_argument("--parent", type=int, required=True, help="the core's pid")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--his-db", required=True)
    p.add_argument("--timezone", required=True)
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from clinicflow.mqtt import PahoMessageBus
    from queueserver.app import create_app
    from queueserver.auth import TokenBook
    from queueserver.core_link import RemoteQueueService
    from queueserver.hospital.embedded import EmbeddedHospitalBackend

    data_dir = Path(args.data_dir)
    backend = EmbeddedHospitalBackend(args.his_db, timezone_name=args.timezone)
    remote = await RemoteQueueService.connect(socket.socket(fileno=args.channel_fd), backend=backend)
    tokens = TokenBook.load_or_create(data_dir, remote.hospital)
    bus = None
    broker = remote.settings.get("broker", "none")
    if broker != "none":  # the fleet page's own subscription; the core publishes the queue
        bus = PahoMessageBus(broker, client_id=f"clinicflow-http-{remote.site}-{uuid.uuid4().hex[:8]}"[:64])

    def on_startup() -> None:
        if bus is not None:
            bus.start()
        gc.collect()
        gc.freeze()  # as in the core: full collections stop walking the start-up heap

    def on_shutdown() -> None:
        if bus is not None:
            bus.stop()
        backend.close()
        store.dispose()  # the one store opened below, before any request

    from queueserver.store import Store

    # help requests, patient sessions, the dashboard's reads (the core migrated it)
    store = Store(os.environ["CLINICFLOW_STORE_URL"])
    app = create_app(remote, tokens, on_startup=on_startup, on_shutdown=on_shutdown,  # type: ignore[arg-type]
                     alert_interval=0, republish_interval=0, hospital_path=data_dir / "hospital.json",
                     data_dir=data_dir, store=store)
    app.state.bus = bus
    # The inherited socket as what it is (TCP): uvicorn's own --fd takes every descriptor for a Unix
    # socket, and without TCP_NODELAY each answer waited ~40 ms for a delayed ACK.
    listener = socket.socket(fileno=args.fd)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3, ssl_certfile=os.environ.get("CLINICFLOW_TLS_CERT"),
                            ssl_keyfile=os.environ.get("CLINICFLOW_TLS_KEY"))  # set by the core for --https
    server = uvicorn.Server(config)

    async def exit_with_core() -> None:
        await remote.closed
        server.should_exit = True

    watcher = asyncio.ensure_future(exit_with_core())
    try:
        await server.serve(sockets=[listener])
    finally:
        watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    _die_with_parent(args.parent)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
