"""The queue core's process when HTTP runs in worker processes (``clinicflow server --http-workers N``).

It owns the listening socket and hands it to N ``queueserver.front`` processes, serves their
calls (``queueserver.core_link.CoreServer``), publishes over MQTT, runs the long-wait checks,
restarts a worker that dies, and on SIGTERM stops the workers before saying offline.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from queueserver.app import start_background_loops
from queueserver.core_link import CoreServer
from queueserver.service import QueueService

log = logging.getLogger("queueserver.core")


def run_core(service: QueueService, bus: Any, args: argparse.Namespace, listener: socket.socket, *,
             on_startup: Callable[[], None], on_shutdown: Callable[[], None], his_path: str,
             republish_interval: float) -> int:
    """Serve on ``listener`` (bound by the caller) until SIGTERM or SIGINT; returns the exit status."""
    import uvloop

    return uvloop.run(_serve(service, bus, args, listener, on_startup=on_startup, on_shutdown=on_shutdown,
                             his_path=his_path, republish_interval=republish_interval))


async def _serve(service: QueueService, bus: Any, args: argparse.Namespace, listener: socket.socket, *,
                 on_startup: Callable[[], None], on_shutdown: Callable[[], None], his_path: str,
                 republish_interval: float) -> int:
    loop = asyncio.get_running_loop()
    core = CoreServer(service, mqtt_connected=lambda: bool(bus is not None and bus.connected))
    await core.start()
    await loop.run_in_executor(None, on_startup)
    stop_loops = start_background_loops(service, alert_interval=args.alert_interval,
                                        republish_interval=republish_interval)
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "queueserver.front", "--fd", str(listener.fileno()),
               "--core", core.address.lstrip("\0"), "--parent", str(os.getpid()), "--data-dir", args.data_dir,
               "--his-db", his_path, "--timezone", service.hospital.site.timezone,
               "--broker", args.broker or "none", "--log-level", args.log_level]
    workers: list[subprocess.Popen[bytes]] = []
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    started: dict[int, float] = {}
    quick_exits = 0

    def spawn() -> subprocess.Popen[bytes]:
        # The store's URL may hold a password: in the environment (owner-only), not on the command line.
        worker = subprocess.Popen(command, pass_fds=(listener.fileno(),),
                                  env={**os.environ, "CLINICFLOW_STORE_URL": service.store.url})
        started[worker.pid] = loop.time()
        return worker

    workers = [spawn() for _ in range(args.http_workers)]
    status = 0
    log.info("queue core %s serving %d HTTP worker processes on %s:%s", os.getpid(), len(workers), args.host,
             args.port)
    try:
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            for i, worker in enumerate(workers):
                if worker.poll() is not None and not stopping.is_set():
                    log.error("HTTP worker %s exited with %s; starting another", worker.pid, worker.returncode)
                    if loop.time() - started.pop(worker.pid, 0.0) < 5:
                        quick_exits += 1
                    if quick_exits > 3:  # a worker that cannot start will not start next time either
                        log.error("HTTP workers keep failing at start; stopping the server")
                        status = 1
                        stopping.set()
                        break
                    workers[i] = spawn()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(5)
            except subprocess.TimeoutExpired:
                worker.kill()
        listener.close()
        stop_loops.set()
        await core.close()
        await loop.run_in_executor(None, on_shutdown)
    return status
