"""Remote config really applies: a technician pushes settings to real device processes and restarts them."""
from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from clinicflow.agent import DeviceAgent, settings_in_force
from config.loader import load_config
from config.schema import ConfigError
from kiosk.remote_config import attach_kiosk, refuse_fake_hardware
from tests.fixtures_fleet import until

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "config" / "examples"


def test_a_push_applies_live_a_refused_one_leaves_the_retained_config_and_a_restart_keeps_it(fleet):
    fleet.start_kiosk("kiosk-c", "--printer", "none", "--report-printer", "none", "--speaker", "none",
                      "--idle-timeout", "60")
    fleet.wait("kiosk-c", lambda d: d["online"] and d["details"].get("idle_timeout_s") == 60.0)

    ok = fleet.admin.put("/api/v1/fleet/kiosk-c/config", json={"idle_timeout_s": 120, "default_language": "en",
                                                                 "volume": 30})
    answer = ok.json()["response"]
    assert answer["status"] == "ok" and answer["data"]["restart_needed"] == []
    assert answer["data"]["not_used"] == ["volume"]  # a kiosk has no volume control: it says so
    accepted = ok.json()["revision"]
    # Applied live, on the window at Home (a periodic status may catch the apply half done: wait for all of it).
    fleet.wait("kiosk-c", lambda d: d["details"].get("idle_timeout_s") == 120.0 and d["details"].get("language") == "en"
               and d["config_ok"] is True)

    # A Guangdong site: Cantonese beside Chinese reads the Chinese screens aloud in Cantonese, live; and back.
    for languages, default, voice in ((["zh", "yue"], "zh", "yue"), (["zh", "en"], "en", "en")):
        pushed = fleet.admin.put("/api/v1/fleet/kiosk-c/config", json={
            "idle_timeout_s": 120, "languages": languages, "default_language": default, "volume": 30})
        assert pushed.json()["response"]["status"] == "ok", pushed.json()
        fleet.wait("kiosk-c", lambda d: d["details"].get("language") == default and d["details"].get("voice") == voice)
    accepted = pushed.json()["revision"]

    # A room the hospital does not have never leaves the server.
    r7 = fleet.admin.put("/api/v1/fleet/kiosk-c/config", json={"rooms": ["r7"]})
    assert r7.status_code == 422 and "r7 is not a room of this hospital" in r7.json()["detail"]

    # The kiosk refuses a push it cannot show; the broker keeps the accepted one, not the refused one.
    refused = fleet.admin.put("/api/v1/fleet/kiosk-c/config", json={"languages": ["yue"], "default_language": "yue",
                                                                      "idle_timeout_s": 30})
    assert refused.json()["response"]["status"] == "error" and "zh, en only" in refused.json()["response"]["error"]
    until(lambda: fleet.retained_config("kiosk-c") or {}, lambda c: c.get("revision") == accepted)
    # The page shows the refusal until the next push: it reaches the registry in the kiosk's next status,
    # which nothing orders before the retained config read above.
    fleet.wait("kiosk-c", lambda d: d["config_ok"] is False and "zh, en only" in (d.get("config_error") or ""))

    # After a restart the kiosk runs the last accepted config, not its command line's.
    fleet.restart("kiosk-c")
    k = fleet.wait("kiosk-c", lambda d: d["online"] and d["uptime_s"] is not None and d["uptime_s"] < 5
                   and d["details"].get("config_revision") == accepted)
    assert k["details"]["idle_timeout_s"] == 120.0  # its very first status already runs the accepted config
    assert k["details"]["language"] == "en"
    fleet.wait("kiosk-c", lambda d: d["config_ok"] is True)  # the refusal is gone once the accepted one runs


def test_keys_not_applied_live_are_reported_and_used_at_the_next_start(mosquitto, tmp_path, monkeypatch):
    from clinicflow.mqtt import PahoMessageBus
    from protocol import topics

    monkeypatch.setenv("CLINICFLOW_STATE_DIR", str(tmp_path / "state"))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mqtt-password").write_text("pw\n")
    device_file = tmp_path / "door.toml"
    device_file.write_text((EXAMPLES / "door_screen.toml").read_text().replace("/etc/clinicflow/secrets/", f"{secrets}/"))
    config = load_config(str(device_file))
    assert settings_in_force(config).orientation == "portrait"

    site, device = "cfgtest", config.device.id
    bus = PahoMessageBus(mosquitto.url)
    agent = DeviceAgent(bus, site=site, device_id=device, role="door_screen", settings=config.settings_dict(),
                        reboot=lambda: None)
    applied: list[dict] = []
    agent.on_config(applied.append, live={"rooms", "languages", "announce_repeat"}, unused={"volume"})
    answers = []
    got = threading.Event()

    def on_response(t, m, r):
        answers.append(m)
        got.set()

    from protocol.payloads import DeviceResponse
    bus.subscribe_model(topics.device(site, device, "response"), DeviceResponse, on_response)
    agent.start()
    bus.start()
    try:
        assert bus.wait_connected(5)
        bus.publish(topics.device(site, device, "config"), json.dumps({"orientation": "landscape", "revision": "r1"}).encode(),
                    retain=True).wait_for_publish(5)
        assert got.wait(5)
        answer = answers[-1]
        assert answer.status == "ok" and answer.data["restart_needed"] == ["orientation"]
        assert agent.build_status().details["restart_needed"] == "orientation"
        # The next start of the app reads it (display.cli builds the window from settings_in_force).
        assert settings_in_force(config).orientation == "landscape"
    finally:
        bus.publish(topics.device(site, device, "config"), b"", retain=True).wait_for_publish(5)
        agent.stop()
        bus.stop()


def test_a_kiosk_reboot_waits_for_the_patient_at_the_screen():
    agent_bus = SimpleNamespace(subscribe=lambda *a, **k: None, publish=lambda *a, **k: None,
                                add_connection_listener=lambda *a: None)
    rebooted = threading.Event()
    agent = DeviceAgent(agent_bus, site="demo", device_id="kiosk-9", role="kiosk", reboot=rebooted.set, busy_poll=0.02)
    vm = SimpleNamespace(patient=object(), screen="payment", printer_fault="", server_reachable=True,
                         settings=SimpleNamespace(idle_timeout=60.0), language="zh")
    attach_kiosk(agent, vm, {}, probe_interval=0)
    from protocol.payloads import DeviceCommand

    agent._start_reboot(DeviceCommand(command="reboot", transaction="t1"))
    assert not rebooted.wait(0.3) and agent.build_status().details["reboot_pending"] is True
    vm.patient, vm.screen = None, "home"  # the patient finished (or the idle timer cleared the session)
    assert rebooted.wait(2)
    agent.stop()


def test_a_provisioned_kiosk_refuses_fake_hardware_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("CLINICFLOW_ALLOW_FAKE_HARDWARE", raising=False)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mqtt-password").write_text("pw\n")
    (secrets / "api-token").write_text("tok\n")
    text = (EXAMPLES / "kiosk.toml").read_text().replace("/etc/clinicflow/secrets/", f"{secrets}/")
    text = text.replace('adapter = "escpos_usb"', 'adapter = "fake"')
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"hardware.printer.adapter: \"fake\" would pretend"):
        refuse_fake_hardware(load_config(str(path)))
    monkeypatch.setenv("CLINICFLOW_ALLOW_FAKE_HARDWARE", "1")  # a demo that means it
    refuse_fake_hardware(load_config(str(path)))


def test_a_pushed_volume_makes_the_next_announcement_quieter(mosquitto, tmp_path):
    import queue
    import wave
    from array import array

    from clinicflow.mqtt import PahoMessageBus
    from display.runtime import CallScreen
    from hardware.speech import AlsaPlayer, EspeakSpeaker, PhraseCache
    from protocol import topics
    from protocol.payloads import DeviceCommand, DeviceResponse

    # aplay's stand-in keeps each WAV it was handed (there is no sound card here to listen with).
    heard = tmp_path / "heard"
    heard.mkdir()
    recorder = tmp_path / "aplay"
    recorder.write_text(f'#!/bin/sh\nfor last; do :; done\ncp "$last" "{heard}/$(date +%s%N).wav"\n')
    recorder.chmod(0o755)
    speaker = EspeakSpeaker(player=AlsaPlayer(binary=str(recorder)), cache=PhraseCache(tmp_path / "cache"))
    site = "voltest"
    screen = CallScreen(mosquitto.url, site, ["r1"], speaker=speaker, device_id="door-vol", languages=("en",),
                        repeats=1, tick_interval=None)
    tech = PahoMessageBus(mosquitto.url)
    answers: queue.Queue[DeviceResponse] = queue.Queue()
    tech.subscribe_model(topics.device(site, "door-vol", "response"), DeviceResponse, lambda t, m, r: answers.put(m))
    tech.start()

    def announce() -> int:
        before = set(heard.iterdir())
        tech.publish(topics.device(site, "door-vol", "command"), DeviceCommand(command="test_announcement",
                                                                               transaction=f"t{time.monotonic_ns()}"))
        assert answers.get(timeout=20).status == "ok"
        spoken = max(set(heard.iterdir()) - before)  # the last WAV: the English sentence, after the chime
        with wave.open(str(spoken)) as w:
            return max(abs(s) for s in array("h", w.readframes(w.getnframes())))

    try:
        screen.start()
        assert tech.wait_connected(5) and screen.bus.wait_connected(5)
        loud = announce()
        tech.publish(topics.device(site, "door-vol", "config"), json.dumps({"volume": 25, "revision": "v1"}).encode(),
                     retain=True)
        answer = answers.get(timeout=10)
        assert answer.status == "ok" and "volume" not in answer.data["not_used"] + answer.data["restart_needed"]
        quiet = announce()
        assert 0.2 < quiet / loud < 0.3, (quiet, loud)
        # A push replaces the last one: without volume, the phrases play as synthesised again.
        tech.publish(topics.device(site, "door-vol", "config"), json.dumps({"announce_repeat": 1, "revision": "v2"}).encode(),
                     retain=True)
        assert answers.get(timeout=10).status == "ok"
        assert announce() == loud
    finally:
        tech.publish(topics.device(site, "door-vol", "config"), b"", retain=True).wait_for_publish(5)
        tech.stop()
        screen.stop()
        speaker.close()


def test_the_device_files_volume_is_in_force_and_a_push_without_volume_keeps_it():
    """A call screen whose file says ``volume = 40`` plays at 40 from the start and after a push that names only
    rooms (call screens scale each phrase by the settings' volume when the file or the push named it,
    display/remote_config.py); a file without ``volume`` plays phrases as synthesised (the schema's 80 is
    never applied)."""
    bus = SimpleNamespace(publish=lambda *args, **kwargs: None)

    def level(agent: DeviceAgent) -> int:  # what display/remote_config.py and kiosk/remote_config.py play at
        return agent.asked_for(agent.settings, "volume", 100)

    quiet = DeviceAgent(bus, site="s", device_id="door-v", role="door_screen",
                        settings={"rooms": ["r1"], "volume": 40}, reboot=lambda: None, state_file=None)
    assert level(quiet) == 40
    quiet._handle_config(json.dumps({"rooms": ["r2"], "revision": "rev-1"}).encode())  # as from the broker
    assert quiet.settings["rooms"] == ["r2"] and level(quiet) == 40
    plain = DeviceAgent(bus, site="s", device_id="door-p", role="door_screen",
                        settings={"rooms": ["r1"]}, reboot=lambda: None, state_file=None)
    assert plain.settings["volume"] == 80 and level(plain) == 100  # a default nobody asked for is not applied
