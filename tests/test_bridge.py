"""Two real Mosquitto brokers, central and campus, joined by the bridge clinicflow generates.

The link between them runs through a small TCP relay so that the test can cut it (as a
campus WAN outage would) while both brokers and the queue server keep running.
"""
from __future__ import annotations

import grp
import queue
import socket
import threading
from collections.abc import Iterator

import pytest

from clinicflow.broker import MosquittoBroker, free_port
from clinicflow.mqtt import PahoMessageBus
from config.bridge import bridge_state_topic, render_bridge
from protocol import CallEvent, RoomState, topics


class Link:
    """A TCP relay from a local port to the central broker that can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = ("127.0.0.1", target_port)
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones, like a dead WAN line."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close alone would not
            except OSError:
                pass
            listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def campus(tmp_path_factory) -> Iterator[tuple[MosquittoBroker, MosquittoBroker, Link]]:
    central = MosquittoBroker(workdir=tmp_path_factory.mktemp("central")).start()
    link = Link(central.port)
    link.up()
    bridge = render_bridge("east", f"mqtt://127.0.0.1:{link.port}", "demo", restart=(1, 1), keepalive=5)
    campus = MosquittoBroker(workdir=tmp_path_factory.mktemp("campus"), extra_config=bridge).start()
    try:
        yield central, campus, link
    finally:
        link.cut()
        campus.stop()
        central.stop()


def _bridge_states(campus: MosquittoBroker) -> tuple[PahoMessageBus, "queue.Queue[str]"]:
    states: queue.Queue[str] = queue.Queue()
    watcher = PahoMessageBus(campus.url)
    watcher.subscribe(bridge_state_topic("east"), lambda t, p, r: states.put(p.decode()))
    watcher.start()
    return watcher, states


def _expect(states: "queue.Queue[str]", value: str, timeout: float = 10) -> None:
    while states.get(timeout=timeout) != value:
        pass


def test_a_call_made_centrally_reaches_a_screen_on_the_campus_broker_and_state_recovers_after_a_cut(
        campus, queue_server_factory):
    central, campus_broker, link = campus
    watcher, bridge = _bridge_states(campus_broker)
    server = queue_server_factory(broker_url=central.url)
    screen = PahoMessageBus(campus_broker.url)  # a call screen that knows only its campus broker
    calls: queue.Queue[CallEvent] = queue.Queue()
    states: queue.Queue[RoomState] = queue.Queue()
    screen.subscribe_model(topics.calls("demo"), CallEvent, lambda t, m, r: calls.put(m))
    screen.subscribe_model(topics.room_state("demo", "r1"), RoomState, lambda t, m, r: states.put(m))
    try:
        _expect(bridge, "1")
        screen.start()
        assert screen.wait_connected(5)
        # The server's retained snapshot crossed the bridge and was kept by the campus broker.
        first = states.get(timeout=10)
        assert first.room == "r1"

        with server.client("kiosk") as kiosk, server.client("clinician") as clinician:
            ticket = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
            call = clinician.post("/api/v1/rooms/r1/call-next")
            assert call.status_code == 200, call.text
            event = calls.get(timeout=10)
            assert event.ticket == ticket["number"] and event.room == "r1"

            link.cut()
            _expect(bridge, "0")
            # The clinic goes on centrally while the campus is cut off.
            assert clinician.post("/api/v1/rooms/r1/finish").status_code == 200
            during = clinician.post("/api/v1/rooms/r1/pause")
            assert during.status_code == 200, during.text
            paused_seq = during.json()["seq"]

            link.up()
            _expect(bridge, "1")
            # On reconnect the bridge re-subscribes and the central retained snapshot brings the screen up to date.
            while (state := states.get(timeout=10)).seq < paused_seq:
                pass
            assert state.status.value == "paused" and state.current is None

        # A screen that boots on the campus now gets the same state from the campus broker alone.
        late: queue.Queue[RoomState] = queue.Queue()
        with PahoMessageBus(campus_broker.url) as booted:
            booted.subscribe_model(topics.room_state("demo", "r1"), RoomState, lambda t, m, r: late.put(m))
            assert late.get(timeout=5).seq == paused_seq
        assert calls.empty()  # calls are not replayed after an outage: the state is
    finally:
        screen.stop()
        watcher.stop()


def test_device_status_on_the_campus_reaches_the_central_fleet(campus):
    central, campus_broker, link = campus
    watcher, bridge = _bridge_states(campus_broker)
    seen: queue.Queue[bytes] = queue.Queue()
    try:
        _expect(bridge, "1")
        with PahoMessageBus(central.url) as fleet, PahoMessageBus(campus_broker.url) as device:
            fleet.subscribe(topics.device("demo", "hall-9", "status"), lambda t, p, r: seen.put(p))
            fleet.subscribe(topics.device("demo", "hall-9", "availability"), lambda t, p, r: seen.put(p))
            assert fleet.wait_connected(5) and device.wait_connected(5)
            # Once the fleet's subscription is live, a retained status published on the campus shows up centrally.
            device.publish(topics.device("demo", "hall-9", "status"), b'{"probe": 1}', retain=True).wait_for_publish(5)
            assert seen.get(timeout=10) == b'{"probe": 1}'
            # A message for the campus's devices' config crosses the other way; nothing loops back.
            got: queue.Queue[bytes] = queue.Queue()
            device.subscribe(topics.device("demo", "hall-9", "config"), lambda t, p, r: got.put(p))
            fleet.publish(topics.device("demo", "hall-9", "config"), b'{"rooms": ["r3"]}', retain=True).wait_for_publish(5)
            assert got.get(timeout=10) == b'{"rooms": ["r3"]}'
            assert seen.empty()
    finally:
        watcher.stop()


def test_the_generated_tls_bridge_logs_in_to_a_locked_down_central_broker(tmp_path):
    """`broker-config --campus east` on the central broker, `--bridge-to` on the campus: retained state crosses."""
    from config import broker_config
    from config.broker_config import SERVER_PASSWORD_FILE

    central_port, campus_port = free_port(), free_port()
    central_dir, campus_dir = tmp_path / "central", tmp_path / "campus"
    assert broker_config.main(["--data-dir", str(central_dir), "--hostname", "127.0.0.1", "--port", str(central_port),
                               "--bind", "127.0.0.1", "--server-port", "0", "--campus", "east"]) == 0
    assert "user campus-east\ntopic readwrite clinicflow/v1/demo/#" in (central_dir / "broker" / "acl").read_text()
    assert broker_config.main(["--data-dir", str(campus_dir), "--hostname", "127.0.0.1", "--port", str(campus_port),
                               "--bind", "127.0.0.1", "--server-port", "0",
                               "--bridge-to", f"mqtts://127.0.0.1:{central_port}",
                               "--bridge-name", "east",
                               "--bridge-password-file", str(central_dir / "broker" / "campus-east-mqtt-password"),
                               "--bridge-ca", str(central_dir / "broker" / "ca.crt")]) == 0
    bridge_conf = campus_dir / "broker" / "clinicflow-bridge.conf"
    # It holds the bridge's password: readable by the broker's group (Mosquitto re-reads it as user mosquitto), no one else.
    assert bridge_conf.stat().st_mode & 0o777 == 0o640 and grp.getgrgid(bridge_conf.stat().st_gid).gr_name == "mosquitto"

    def conf(d):
        return (d / "broker" / "clinicflow.conf").read_text()

    central = MosquittoBroker(central_port, workdir=tmp_path / "c-run", default_listener=False,
                              extra_config=conf(central_dir))
    campus_broker = MosquittoBroker(campus_port, workdir=tmp_path / "k-run", default_listener=False,
                                    extra_config=conf(campus_dir) + bridge_conf.read_text())
    (tmp_path / "c-run").mkdir()
    (tmp_path / "k-run").mkdir()
    with central, campus_broker:
        def server_bus(d, port):
            password = (d / "broker" / SERVER_PASSWORD_FILE).read_text().strip()
            return PahoMessageBus(f"mqtts://queueserver:{password}@127.0.0.1:{port}", ca_certs=str(d / "broker" / "ca.crt"))

        got: queue.Queue[bytes] = queue.Queue()
        with server_bus(central_dir, central_port) as server, server_bus(campus_dir, campus_port) as local:
            local.subscribe(topics.room_state("demo", "r4"), lambda t, p, r: got.put(p))
            assert server.wait_connected(5) and local.wait_connected(5)
            server.publish(topics.room_state("demo", "r4"), b'{"seq": 12}', retain=True).wait_for_publish(5)
            assert got.get(timeout=10) == b'{"seq": 12}'
    log = (tmp_path / "c-run" / "mosquitto.log").read_text()
    # The central broker knows the bridge by its user (client ids are bound to users on the device listener).
    assert "Client campus-east" in log and "not authorised" not in log.lower()
