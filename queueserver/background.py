"""The queue server's periodic work: long-wait checks and, with several replicas, republishing.

A module of its own, without FastAPI, so that the queue core's process (``--http-workers``)
starts without loading the web framework it does not serve with.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queueserver.service import QueueService

log = logging.getLogger(__name__)


def start_background_loops(service: QueueService, *, alert_interval: float,
                           republish_interval: float) -> threading.Event:
    """Long-wait checks and (with several replicas) periodic republishing, in daemon threads; set the event to stop."""
    stop = threading.Event()

    def every(interval: float, fn: Callable[[], object], what: str) -> None:
        while not stop.wait(interval):
            try:
                fn()
            except Exception:
                log.exception("%s failed", what)

    if alert_interval > 0:
        threading.Thread(target=every, args=(alert_interval, service.check_alerts, "long-wait check"),
                         name="long-wait-alerts", daemon=True).start()
    if republish_interval > 0:
        # With several replicas two snapshots of a room can reach the broker out of order, leaving an
        # older retained one; screens order by seq, and this bounds how long a newcomer sees it.
        threading.Thread(target=every, args=(republish_interval, service.republish_all, "periodic republish"),
                         name="republish", daemon=True).start()
    return stop
