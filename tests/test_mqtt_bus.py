"""The MQTT bus every process uses, against a real Mosquitto."""
from __future__ import annotations

import logging
import queue
import time
from datetime import datetime, timezone

from clinicflow.mqtt import BrokerAddress, PahoMessageBus
from protocol import RoomState, topics

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)


def _state(seq: int) -> RoomState:
    return RoomState(seq=seq, ts=NOW, site="bus", room="r1", department="internal", status="open")


def test_broker_url_parsing_names_the_problem():
    assert BrokerAddress.from_url("mqtts://kiosk-3:s%40cret@broker.local") == BrokerAddress(
        "broker.local", 8883, True, "kiosk-3", "s@cret")
    for bad in ("http://x", "mqtt://"):
        try:
            BrokerAddress.from_url(bad)
        except ValueError as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")


def test_bad_payload_is_dropped_and_the_next_good_one_still_arrives(mosquitto, caplog):
    received: queue.Queue[RoomState] = queue.Queue()
    listener = PahoMessageBus(mosquitto.url)
    listener.subscribe_model(topics.all_room_states("bus"), RoomState, lambda t, m, r: received.put(m))
    sender = PahoMessageBus(mosquitto.url)
    with listener, sender, caplog.at_level(logging.WARNING):
        assert listener.wait_connected(5) and sender.wait_connected(5)
        sender.publish(topics.room_state("bus", "r1"), b'{"v": 1, "seq": "oops"}').wait_for_publish(5)
        sender.publish(topics.room_state("bus", "r1"), _state(7)).wait_for_publish(5)
        assert received.get(timeout=5).seq == 7
    assert any("dropped payload" in r.message for r in caplog.records)


def test_a_handler_that_raises_does_not_stop_delivery(mosquitto):
    got: queue.Queue[bytes] = queue.Queue()

    def broken(topic: str, payload: bytes, retained: bool) -> None:
        raise RuntimeError("bug in a screen")

    bus = PahoMessageBus(mosquitto.url)
    bus.subscribe("test/raise/#", broken)
    bus.subscribe("test/raise/#", lambda t, p, r: got.put(p))
    with bus:
        assert bus.wait_connected(5)
        bus.publish("test/raise/a", b"1").wait_for_publish(5)
        bus.publish("test/raise/a", b"2").wait_for_publish(5)
        assert [got.get(timeout=5), got.get(timeout=5)] == [b"1", b"2"]


def test_resubscribes_and_gets_retained_state_again_after_broker_restart(private_mosquitto):
    snapshots: queue.Queue[tuple[int, bool]] = queue.Queue()
    links: queue.Queue[bool] = queue.Queue()
    screen = PahoMessageBus(private_mosquitto.url)
    screen.subscribe_model(topics.all_room_states("bus"), RoomState, lambda t, m, r: snapshots.put((m.seq, r)))
    screen.add_connection_listener(links.put)
    server = PahoMessageBus(private_mosquitto.url)
    with screen, server:
        assert screen.wait_connected(5) and server.wait_connected(5)
        server.publish(topics.room_state("bus", "r1"), _state(1), retain=True).wait_for_publish(5)
        assert snapshots.get(timeout=5)[0] == 1
        assert links.get(timeout=5) is True

        private_mosquitto.restart()  # retained messages are gone with it (persistence off)
        assert links.get(timeout=10) is False
        assert links.get(timeout=10) is True
        assert server.wait_connected(10)
        server.publish(topics.room_state("bus", "r1"), _state(2), retain=True).wait_for_publish(5)
        assert snapshots.get(timeout=5)[0] == 2


def test_availability_is_birth_and_last_will(mosquitto):
    seen: queue.Queue[bytes] = queue.Queue()
    watcher = PahoMessageBus(mosquitto.url)
    avail = topics.device("bus", "hall-1", "availability")
    watcher.subscribe(avail, lambda t, p, r: seen.put(p))
    with watcher:
        assert watcher.wait_connected(5)
        # A raw client with the same will as the bus would set, killed without DISCONNECT.
        device = PahoMessageBus(mosquitto.url, availability_topic=avail)
        device.start()
        assert seen.get(timeout=5) == b"online"
        device._client.socket().close()  # a network cut: the broker publishes the will
        assert seen.get(timeout=40) == b"offline"
        device._client.loop_stop()


def test_plain_paho_client_that_connects_later_receives_retained_state(mosquitto):
    with PahoMessageBus(mosquitto.url) as server:
        assert server.wait_connected(5)
        server.publish(topics.room_state("bus", "r9"), _state(11).model_copy(update={"room": "r9"}), retain=True).wait_for_publish(5)
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    late = mqtt.Client(CallbackAPIVersion.VERSION2)
    late.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.room_state("bus", "r9"), 1)
    late.on_message = lambda c, u, m: got.put(m)
    late.connect(mosquitto.host, mosquitto.port)
    late.loop_start()
    try:
        message = got.get(timeout=5)
        assert message.retain and RoomState.model_validate_json(message.payload).seq == 11
    finally:
        late.loop_stop()
        late.disconnect()


def test_a_message_with_an_expiry_is_refused_while_the_broker_is_down_and_never_sent_late(private_mosquitto):
    got: queue.Queue[tuple[bytes, int | None]] = queue.Queue()
    listener = PahoMessageBus(private_mosquitto.url)
    sender = PahoMessageBus(private_mosquitto.url)
    listener._client.on_message = lambda c, u, m: got.put((m.payload, getattr(m.properties, "MessageExpiryInterval", None)))
    listener.subscribe("bus/expiry", lambda *_: None)
    with listener, sender:
        assert listener.wait_connected(5) and sender.wait_connected(5)
        sender.publish("bus/expiry", b"in time", expiry=10).wait_for_publish(5)
        payload, expiry = got.get(timeout=5)
        assert payload == b"in time" and expiry is not None and 0 < expiry <= 10, "the broker forwards the expiry"

        private_mosquitto.stop()
        deadline = time.monotonic() + 5
        while sender.link_up:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sender.publish("bus/expiry", b"late call", expiry=10) is None, "refused, not queued"
        # Retained, so the listener gets it whichever of the two reconnects first.
        assert sender.publish("bus/expiry", b"snapshot", retain=True).rc == mqtt.MQTT_ERR_NO_CONN, "kept for later"
        private_mosquitto.start()
        assert sender.wait_connected(10) and listener.wait_connected(10)
        sender.publish("bus/expiry", b"after").wait_for_publish(5)
        seen = [got.get(timeout=5)[0] for _ in range(2)]
        assert seen == [b"snapshot", b"after"]


def test_falls_back_to_mqtt_3_1_1_on_a_broker_that_only_speaks_it():
    from clinicflow.broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    received: queue.Queue[int] = queue.Queue()
    screen = PahoMessageBus(broker.url)
    screen.subscribe_model(topics.all_room_states("bus"), RoomState, lambda t, m, r: received.put(m.seq))
    server = PahoMessageBus(broker.url)
    try:
        with screen, server:
            assert screen.wait_connected(10) and server.wait_connected(10)
            server.publish(topics.room_state("bus", "r1"), _state(4), retain=True, expiry=10).wait_for_publish(5)
            assert received.get(timeout=5) == 4
    finally:
        broker.stop()
