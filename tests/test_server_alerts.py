"""Long waits raise an alert on MQTT once, and the clinician view shows it (real Mosquitto, moved clock)."""
from __future__ import annotations

import queue

from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from protocol.payloads import Alert, RoomState
from queueserver.publisher import MqttPublisher, server_bus
from tests.clinic_day import ClinicDay


def test_long_wait_raises_one_alert_and_shows_on_the_console(tmp_path, mosquitto):
    bus = server_bus(mosquitto.url, "demo", instance="alerts-test")
    bus.start()
    assert bus.wait_connected(5)
    seen: queue.Queue = queue.Queue()
    listener = PahoMessageBus(mosquitto.url)
    listener.subscribe_model(topics.alerts("demo"), Alert, lambda t, a, r: seen.put(a))
    listener.start()
    assert listener.wait_connected(5)
    clinic = ClinicDay(tmp_path, publisher=MqttPublisher(bus, "demo"), long_wait_alert_min=30)
    try:
        clinic.at("09:00")
        waiting = clinic.walk_in("pediatrics")
        clinic.at("09:20")
        assert clinic.service.check_alerts() == []
        clinic.at("09:31")
        raised = clinic.service.check_alerts()
        assert [a.ticket for a in raised] == [waiting["number"]]
        alert = seen.get(timeout=5)
        assert alert.kind == "long_wait" and alert.ticket == waiting["number"] and alert.department == "pediatrics"
        assert alert.message == f"{waiting['number']} has waited 31 min (limit 30 min)."
        clinic.at("09:40")
        assert clinic.service.check_alerts() == []  # once per ticket, not every sweep
        console = clinic.service.console("r4")
        assert console["alerts"] == [f"{waiting['number']} has waited 40 min (limit 30)."]
        assert console["queue"][0]["long_wait"] is True
    finally:
        clinic.close()
        listener.stop()
        bus.stop()


def test_every_change_publishes_the_room_snapshot_with_a_rising_seq(tmp_path, mosquitto):
    bus = server_bus(mosquitto.url, "seqsite", instance="seq-test")
    bus.start()
    assert bus.wait_connected(5)
    states: queue.Queue = queue.Queue()
    listener = PahoMessageBus(mosquitto.url)
    listener.subscribe_model(topics.room_state("seqsite", "r3"), RoomState, lambda t, s, r: states.put(s))
    listener.start()
    assert listener.wait_connected(5)
    clinic = ClinicDay(tmp_path, publisher=MqttPublisher(bus, "seqsite"))
    clinic.service.site = "seqsite"
    try:
        clinic.at("09:00")
        clinic.walk_in("surgery")
        clinic.walk_in("surgery")
        clinic.call_next("r3")
        got = [states.get(timeout=5) for _ in range(3)]
        assert [s.seq for s in got] == sorted(s.seq for s in got) and len({s.seq for s in got}) == 3
        assert got[0].waiting_count == 1 and got[1].waiting_count == 2
        assert got[2].current.ticket == "B001" and got[2].next_tickets == ("B002",)
    finally:
        clinic.close()
        listener.stop()
        bus.stop()
