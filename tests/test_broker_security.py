"""The locked-down broker, on a real Mosquitto started with what `clinicflow broker-config` generated."""
from __future__ import annotations

import queue
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicflow.agent import DeviceAgent
from clinicflow.broker import MosquittoBroker, free_port
from clinicflow.mqtt import PahoMessageBus
from config import broker_config, devices_cli
from config.broker_config import SERVER_PASSWORD_FILE
from config.bundle import read_bundle
from config.registry import SERVER_MQTT_USER
from config.tls import ensure_ca
from protocol import RoomState, topics

SITE = "demo"
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)


@dataclass
class SecureSite:
    broker: MosquittoBroker
    ca: Path
    passwords: dict[str, str]
    server_port: int

    def url(self, user: str | None) -> str:
        """Devices on the device listener; the queue server on its own (where its several client ids may differ)."""
        auth = f"{user}:{quote(self.passwords[user], safe='')}@" if user else ""
        port = self.server_port if user == SERVER_MQTT_USER else self.broker.port
        return f"mqtts://{auth}127.0.0.1:{port}"

    def bus(self, user: str | None, **kwargs) -> PahoMessageBus:
        return PahoMessageBus(self.url(user), ca_certs=str(self.ca), **kwargs)


@pytest.fixture(scope="module")
def secure_site(tmp_path_factory) -> Iterator[SecureSite]:
    data = tmp_path_factory.mktemp("server-data")
    port, server_port = free_port(), free_port()
    assert broker_config.main(["--data-dir", str(data), "--hostname", "127.0.0.1", "--port", str(port),
                               "--bind", "127.0.0.1", "--server-port", str(server_port)]) == 0
    passwords = {SERVER_MQTT_USER: (data / "broker" / SERVER_PASSWORD_FILE).read_text().strip()}
    for args in (["--role", "display", "--rooms", "1,2", "--name", "hall-2"],
                 ["--role", "kiosk", "--name", "kiosk-1"]):
        assert devices_cli.main(["--data-dir", str(data), "add", *args]) == 0
        bundle = read_bundle(data / "bundles" / f"{args[-1]}.cfbundle")
        assert bundle.ca_cert and f"mqtts://127.0.0.1:{port}" in bundle.config_toml
        passwords[bundle.device_id] = bundle.mqtt_password
    conf = (data / "broker" / "clinicflow.conf").read_text()
    broker = MosquittoBroker(port, workdir=tmp_path_factory.mktemp("secure-mosquitto"), default_listener=False,
                             extra_config=conf).start()
    try:
        yield SecureSite(broker, data / "broker" / "ca.crt", passwords, server_port)
    finally:
        broker.stop()


def _connack(site: SecureSite, username: str | None, password: str | None) -> object:
    """The broker's answer to a CONNECT with these credentials."""
    answer: queue.Queue[object] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(ca_certs=str(site.ca))
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: answer.put(rc)
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    try:
        return answer.get(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_anonymous_and_wrong_passwords_are_refused(secure_site):
    assert _connack(secure_site, None, None).is_failure
    assert _connack(secure_site, "hall-2", "not-the-password").is_failure
    assert not _connack(secure_site, "hall-2", secure_site.passwords["hall-2"]).is_failure


@pytest.mark.parametrize("device", ["hall-2", "kiosk-1"])
def test_a_device_cannot_publish_a_call(secure_site, device):
    seen: queue.Queue[str] = queue.Queue()
    server = secure_site.bus(SERVER_MQTT_USER)
    server.subscribe(topics.calls(SITE), lambda t, p, r: seen.put(t))
    server.subscribe(topics.device(SITE, device, "status"), lambda t, p, r: seen.put(t) if p else None)
    screen = secure_site.bus(device)
    with server, screen:
        assert server.wait_connected(5) and screen.wait_connected(5)
        server.publish(topics.device(SITE, device, "status"), b'{"ready": 1}').wait_for_publish(5)
        assert seen.get(timeout=5) == topics.device(SITE, device, "status")  # the server's subscriptions are live
        screen.publish(topics.calls(SITE), b'{"forged": "call A001 to room 1"}').wait_for_publish(5)
        # Then something it may publish: the broker handles one client's messages in order,
        # so a call that got through would arrive before this status.
        screen.publish(topics.device(SITE, device, "status"), b'{"marker": 1}').wait_for_publish(5)
        assert seen.get(timeout=5) == topics.device(SITE, device, "status")
        assert seen.empty()


def test_a_kiosk_cannot_read_another_devices_subtree(secure_site):
    got: queue.Queue[str] = queue.Queue()
    server = secure_site.bus(SERVER_MQTT_USER)
    hall = secure_site.bus("hall-2")
    kiosk = secure_site.bus("kiosk-1")
    kiosk.subscribe(topics.all_devices(SITE, "status"), lambda t, p, r: got.put(t) if p else None)
    kiosk.subscribe(f"{topics.ROOT}/{SITE}/devices/hall-2/#", lambda t, p, r: got.put(t) if p else None)
    kiosk.subscribe(topics.device(SITE, "kiosk-1", "config"), lambda t, p, r: got.put(t) if p else None)
    with server, hall:
        assert server.wait_connected(5) and hall.wait_connected(5)
        hall.publish(topics.device(SITE, "hall-2", "status"), b'{"secret": "hall status"}', retain=True).wait_for_publish(5)
        server.publish(topics.device(SITE, "hall-2", "config"), b'{"rooms": ["r1"]}', retain=True).wait_for_publish(5)
        server.publish(topics.device(SITE, "kiosk-1", "config"), b'{"modes": ["check_in"]}', retain=True).wait_for_publish(5)
        with kiosk:
            # Retained messages are sent per filter in the order subscribed: the kiosk's own config
            # comes last, so anything of hall-2's it could read would have come first.
            assert got.get(timeout=5) == topics.device(SITE, "kiosk-1", "config")
            hall.publish(topics.device(SITE, "hall-2", "status"), b'{"live": 1}', retain=True).wait_for_publish(5)
            server.publish(topics.device(SITE, "kiosk-1", "config"), b'{"modes": []}', retain=True).wait_for_publish(5)
            assert got.get(timeout=5) == topics.device(SITE, "kiosk-1", "config")
            assert got.empty()
        for topic in (topics.device(SITE, "hall-2", "status"), topics.device(SITE, "hall-2", "config"),
                      topics.device(SITE, "kiosk-1", "config")):
            server.publish(topic, b"", retain=True).wait_for_publish(5)


def test_a_provisioned_hall_board_works_through_the_locked_down_broker(secure_site):
    """The ACL grants what a display needs: room states, calls, its config, its own status and availability."""
    bus = secure_site.bus("hall-2", availability_topic=topics.device(SITE, "hall-2", "availability"))
    agent = DeviceAgent(bus, site=SITE, device_id="hall-2", role="hall_board", status_interval=60,
                        settings={"rooms": ["r1", "r2"]}, reboot=lambda: None)
    rooms: queue.Queue[list[str]] = queue.Queue()
    agent.on_config(lambda s: rooms.put(s["rooms"]))
    states: queue.Queue[RoomState] = queue.Queue()
    bus.subscribe_model(topics.all_room_states(SITE), RoomState, lambda t, m, r: states.put(m))
    seen: queue.Queue[tuple[str, bytes]] = queue.Queue()
    server = secure_site.bus(SERVER_MQTT_USER)
    server.subscribe(f"{topics.ROOT}/{SITE}/devices/hall-2/+", lambda t, p, r: seen.put((t, p)))
    with server:
        assert server.wait_connected(5)
        server.publish(topics.room_state(SITE, "r2"), RoomState(seq=3, ts=NOW, site=SITE, room="r2",
                       department="internal", status="open"), retain=True).wait_for_publish(5)
        agent.start()
        bus.start()
        try:
            assert states.get(timeout=5).room == "r2"
            wanted = {topics.device(SITE, "hall-2", "availability"), topics.device(SITE, "hall-2", "status")}
            while wanted:
                wanted.discard(seen.get(timeout=5)[0])
            server.publish(topics.device(SITE, "hall-2", "config"), b'{"rooms": ["r1"]}', retain=True).wait_for_publish(5)
            assert rooms.get(timeout=5) == ["r1"]
        finally:
            agent.stop()
            bus.stop()
            server.publish(topics.device(SITE, "hall-2", "config"), b"", retain=True).wait_for_publish(5)
            server.publish(topics.room_state(SITE, "r2"), b"", retain=True).wait_for_publish(5)


def test_tls_verifies_the_broker_against_the_sites_ca(secure_site, tmp_path):
    port = secure_site.broker.port
    good = ssl.create_default_context(cafile=str(secure_site.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with good.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # A device given another CA (or a broker impersonated) fails the handshake.
    other_ca, _ = ensure_ca(tmp_path / "other")
    stranger = ssl.create_default_context(cafile=str(other_ca.cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.wrap_socket(raw, server_hostname="127.0.0.1")
    # The certificate names only the hosts it was made for.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|IP address mismatch"):
            good.wrap_socket(raw, server_hostname="broker.elsewhere.example")
