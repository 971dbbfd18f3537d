"""The queue core's process when HTTP runs in worker processes (``clinicflow server --http-workers N``).

It owns the listening socket and hands it to N ``queueserver.front`` processes, each with its
own channel (one end of a socketpair), serves their calls (``queueserver.core_link.CoreServer``),
publishes over MQTT, runs the long-wait checks, restarts a worker that dies, and on SIGTERM
stops the workers before saying offline. Nothing secret goes on a worker's command line
(anyone can read ``/proc/PID/cmdline``): the broker URL, which may hold a password, reaches
the worker through its channel.
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

from queueserver.background import start_background_loops
from queueserver.core_link import CoreServer
from queueserver.service import QueueService

log = logging.getLogger("queueserver.core")


class RestartBudget:
    """When to stop restarting HTTP workers: a worker that keeps dying right after its start will not
    start next time either; one that crashes now and then, with healthy periods between, is restarted
    for as long as the server runs (the count of quick exits is forgiven after ``healthy_s``)."""

    def __init__(self, *, quick_s: float = 5.0, max_quick: int = 3, healthy_s: float = 60.0) -> None:
        self.quick_s, self.max_quick, self.healthy_s = quick_s, max_quick, healthy_s
        self.quick_exits = 0
        self._last_quick: float | None = None

    def exhausted(self, *, ran_for: float, now: float) -> bool:
        """Record a worker's exit after ``ran_for`` seconds; True when the server should give up."""
        if self._last_quick is not None and now - self._last_quick >= self.healthy_s:
            self.quick_exits = 0
        if ran_for < self.quick_s:
            self.quick_exits += 1
            self._last_quick = now
        return self.quick_exits > self.max_quick


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
    core = CoreServer(service, mqtt_connected=lambda: bool(bus is not None and bus.connected),
                      worker_settings={"broker": args.broker or "none"})
    await core.start()
    await loop.run_in_executor(None, on_startup)
    stop_loops = start_background_loops(service, alert_interval=args.alert_interval,
                                        republish_interval=republish_interval)
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "queueserver.front", "--fd", str(listener.fileno()),
               "--parent", str(os.getpid()), "--data-dir", args.data_dir,
               "--his-db", his_path, "--timezone", service.hospital.site.timezone, "--log-level", args.log_level]
    workers: list[subprocess.Popen[bytes]] = []
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    started: dict[int, float] = {}
    budget = RestartBudget()

    def spawn() -> subprocess.Popen[bytes]:
        channel = core.channel()
        try:
            # The store's URL by environment, not argv (a command line is readable by every local user; the
            # URL may hold a password): workers keep help requests and patient sessions there and the
            # dashboard reads it (queueserver.helpdesk, queueserver.dashboard).
            worker = subprocess.Popen([*command, "--channel-fd", str(channel.fileno())],
                                      pass_fds=(listener.fileno(), channel.fileno()),
                                      env={**os.environ, "CLINICFLOW_STORE_URL": service.store.url})
        finally:
            channel.close()  # the worker has its own copy; the core serves the other end
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
                    now = loop.time()
                    if budget.exhausted(ran_for=now - started.pop(worker.pid, 0.0), now=now):
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
