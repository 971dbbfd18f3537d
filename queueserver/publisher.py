"""``MqttPublisher``: the queue server's side of the MQTT contract (``docs/protocol.md``).

Room snapshots go out retained at QoS 1, calls and alerts at QoS 1 not retained, all through
``PahoMessageBus``. The server's availability is the bus's birth and will; every (re)connect
republishes every room's snapshot, so screens recover after a broker restart that lost its
retained messages.
"""
from __future__ import annotations

import logging

from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from protocol.payloads import Alert, CallEvent, RoomState

log = logging.getLogger(__name__)


class MqttPublisher:
    """Publishes a site's room states, calls and alerts on a started ``PahoMessageBus``."""

    def __init__(self, bus: PahoMessageBus, site: str) -> None:
        self.bus = bus
        self.site = site

    def publish_state(self, state: RoomState) -> None:
        self.bus.publish(topics.room_state(self.site, state.room), state, retain=True, qos=1)

    def publish_call(self, event: CallEvent) -> None:
        self.bus.publish(topics.calls(self.site), event, retain=False, qos=1)

    def publish_alert(self, alert: Alert) -> None:
        self.bus.publish(topics.alerts(self.site), alert, retain=False, qos=1)


def server_bus(broker_url: str, site: str, *, instance: str) -> PahoMessageBus:
    """The server's bus: its own client id per replica, birth/will on the site's server availability topic."""
    return PahoMessageBus(broker_url, client_id=f"clinicflow-server-{site}-{instance}"[:64],
                          availability_topic=topics.server_availability(site))
