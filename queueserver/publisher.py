"""``MqttPublisher``: the queue server's side of the MQTT contract (``docs/protocol.md``).

Room snapshots go out retained at QoS 1, calls and alerts at QoS 1 not retained, all through
``PahoMessageBus``. The server's availability is the bus's birth and will; every (re)connect
republishes every room's snapshot (``QueueService.republish_all``), so screens recover after a
broker restart that lost its retained messages.

What the publisher adds to what the service hands it:
- every snapshot and call is stamped with the store's ``epoch`` (``queueserver.store_epoch``);
- a call is stamped with the announcement window (``announce_within_s``) and sent with that
  MQTT 5 message expiry, so neither the broker nor a screen can make it heard late;
- nothing goes out while the broker is unreachable: snapshots are sent again on reconnect,
  and a call is never queued to be spoken late. Such a call, and one the broker did not
  confirm within the window, is *unheard*: ``unheard_calls(room)`` lists it for the
  clinician's console (until the ticket is heard again), and ``on_unheard(room)`` fires;
- a room that is no longer in the hospital (``set_rooms``) has its retained snapshot cleared
  with an empty retained payload, and any retained snapshot of an unknown room found on the
  broker at connect is cleared too, so a board started later never draws it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import timezone
from typing import Any

import paho.mqtt.client as mqtt

from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from protocol.payloads import DEFAULT_ANNOUNCE_WINDOW_S, NO_EPOCH, Alert, CallEvent, RoomState

log = logging.getLogger(__name__)

UNHEARD_KEPT = 20
"""Unheard calls remembered per room (newest kept)."""


class MqttPublisher:
    """Publishes a site's room states, calls and alerts on a started ``PahoMessageBus``."""

    def __init__(self, bus: PahoMessageBus, site: str, *, epoch: str | Callable[[], str] = NO_EPOCH,
                 announce_window: int = DEFAULT_ANNOUNCE_WINDOW_S, rooms: Iterable[str] | None = None,
                 timezone: str | None = None, on_unheard: Callable[[str], None] | None = None) -> None:
        if announce_window < 1:
            raise ValueError("the announcement window must be at least 1 second")
        self.bus = bus
        self.site = site
        self.announce_window = announce_window
        self.on_unheard = on_unheard
        self._epoch = epoch if callable(epoch) else (lambda: epoch)
        self._rooms: set[str] | None = set(rooms) if rooms is not None else None
        self.timezone = timezone
        self._lock = threading.Lock()
        self._unheard: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._watch: deque[tuple[float, CallEvent, mqtt.MQTTMessageInfo]] = deque()
        self._watch_ready = threading.Condition(self._lock)
        self._watcher: threading.Thread | None = None
        # Retained snapshots someone else left (a previous run, a room since removed); not our own echo.
        bus.subscribe(topics.all_room_states(site), self._on_retained_state, no_local=True)

    # ------------------------------------------------------------ publishing
    @property
    def connected(self) -> bool:
        """The broker link is up (what the publisher sends now reaches the broker)."""
        return self.bus.link_up

    @property
    def epoch(self) -> str:
        return self._epoch()

    def publish_state(self, state: RoomState) -> None:
        if not self.connected:
            return  # republished on reconnect: nothing stale waits in a queue
        stamp: dict[str, Any] = {"epoch": self.epoch}
        if self.timezone and not state.timezone:
            stamp["timezone"] = self.timezone
        self.bus.publish(topics.room_state(self.site, state.room), state.model_copy(update=stamp), retain=True, qos=1)

    def publish_call(self, event: CallEvent) -> None:
        event = event.model_copy(update={"epoch": self.epoch, "announce_within_s": self.announce_window})
        info = self.bus.publish(topics.calls(self.site), event, retain=False, qos=1, expiry=self.announce_window)
        if info is None or info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._mark_unheard(event, "the call screens' broker was unreachable")
            return
        self._watch_call(event, info)

    def publish_alert(self, alert: Alert) -> None:
        self.bus.publish(topics.alerts(self.site), alert, retain=False, qos=1)

    # ----------------------------------------------------------- removed rooms
    def set_rooms(self, rooms: Iterable[str], *, timezone: str | None = None) -> None:
        """The site's rooms (and time zone) now; rooms that were known and are gone have their retained
        snapshot cleared (the hospital configuration changed)."""
        new = set(rooms)
        if timezone:
            self.timezone = timezone
        with self._lock:
            removed = (self._rooms or set()) - new
            self._rooms = new
        for room in sorted(removed):
            self.clear_room(room)

    def clear_room(self, room: str) -> None:
        """Clear a removed room's retained snapshot (empty retained payload): running screens drop its tile."""
        log.info("clearing retained state of removed room %s", room)
        with self._lock:
            self._unheard.pop(room, None)
        self.bus.publish(topics.room_state(self.site, room), b"", retain=True, qos=1)

    def _on_retained_state(self, topic: str, payload: bytes, retained: bool) -> None:
        where = topics.parse(topic)
        if not retained or not payload or where is None or where.room is None:
            return
        with self._lock:
            unknown = self._rooms is not None and where.room not in self._rooms
        if unknown:
            self.clear_room(where.room)

    # ---------------------------------------------------------- unheard calls
    def unheard_calls(self, room: str) -> list[dict[str, Any]]:
        """Calls of ``room`` that screens could not hear, newest first: call_id, ticket, kind, at, reason."""
        self._settle_acknowledged()  # a recall the broker just confirmed clears its ticket's mark now
        with self._lock:
            return [dict(m) for m in reversed(self._unheard.get(room, {}).values())]

    def _settle_acknowledged(self) -> None:
        with self._lock:
            done = [entry for entry in self._watch if entry[2].is_published()]
            if not done:
                return
            self._watch = deque(entry for entry in self._watch if not entry[2].is_published())
        for _, event, _ in done:
            self._heard(event)

    def _mark_unheard(self, event: CallEvent, reason: str) -> None:
        log.warning("call %s (%s to %s) not heard by the screens: %s", event.id, event.ticket, event.room, reason)
        with self._lock:
            marks = self._unheard.setdefault(event.room, OrderedDict())
            marks[event.id] = {"call_id": event.id, "ticket": event.ticket, "kind": event.kind.value,
                               "at": event.ts.astimezone(timezone.utc).isoformat(), "reason": reason}
            while len(marks) > UNHEARD_KEPT:
                marks.popitem(last=False)
        if self.on_unheard is not None:
            try:
                self.on_unheard(event.room)
            except Exception:
                log.exception("unheard-call listener failed")

    def _heard(self, event: CallEvent) -> None:
        """A call reached the broker in time: earlier unheard calls of the same ticket are made good."""
        with self._lock:
            marks = self._unheard.get(event.room)
            if not marks:
                return
            stale = [cid for cid, m in marks.items() if m["ticket"] == event.ticket]
            for cid in stale:
                del marks[cid]
        if stale and self.on_unheard is not None:
            try:
                self.on_unheard(event.room)
            except Exception:
                log.exception("unheard-call listener failed")

    def _watch_call(self, event: CallEvent, info: mqtt.MQTTMessageInfo) -> None:
        """Check once the window has passed that the broker acknowledged the call (one thread for all)."""
        with self._watch_ready:
            self._watch.append((time.monotonic() + self.announce_window, event, info))
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch_loop, name="call-watch", daemon=True)
                self._watcher.start()
            self._watch_ready.notify()

    def _watch_loop(self) -> None:
        while True:
            with self._watch_ready:
                while not self._watch:
                    self._watch_ready.wait()
                deadline, event, info = self._watch[0]
                # Acknowledged calls need no wait for their deadline: settle them at once.
                if not info.is_published() and deadline > time.monotonic():
                    self._watch_ready.wait(min(deadline - time.monotonic(), 0.2))
                    continue
                self._watch.popleft()
            if info.is_published():
                self._heard(event)
            else:
                self._mark_unheard(event, f"the broker did not confirm it within {self.announce_window} s")


def server_bus(broker_url: str, site: str, *, instance: str) -> PahoMessageBus:
    """The server's bus: its own client id per replica, birth/will on the site's server availability topic."""
    return PahoMessageBus(broker_url, client_id=f"clinicflow-server-{site}-{instance}"[:64],
                          availability_topic=topics.server_availability(site))
