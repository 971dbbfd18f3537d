"""Device self-test and health probes: what a technician sees when checking a kiosk or a button box."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from gpiozero.pins.mock import MockFactory

from hardware import escpos_preview, health
from hardware.card_reader import FakeCardReader
from hardware.code_scanner import SerialCodeScanner
from hardware.selftest import Peripherals, format_table, main as selftest_main, run
from hardware.serial_frames import encode_frame
from hardware.ticket_printer import FakeTicketPrinter
from protocol import topics
from protocol.payloads import DeviceResponse, decode_payload
from tests.hardware_sims import PtyDevice


# -- health probes on recorded machine state --------------------------------------------------------

def test_under_voltage_since_boot_is_reported_from_vcgencmd():
    probe = health.under_voltage(vcgencmd=lambda *a: "throttled=0x50000")
    assert probe.ok is False and probe.value is True and "since boot" in probe.detail
    assert health.under_voltage(vcgencmd=lambda *a: "throttled=0x0").ok is True


def test_under_voltage_from_sysfs_when_vcgencmd_is_missing(tmp_path: Path):
    fw = tmp_path / "devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True)
    (fw / "get_throttled").write_text("50005\n")
    probe = health.under_voltage(vcgencmd=lambda *a: None, sys_root=tmp_path)
    assert probe.ok is False and probe.detail == "under-voltage now"
    hw = tmp_path / "other/class/hwmon/hwmon0"
    hw.mkdir(parents=True)
    (hw / "name").write_text("rpi_volt\n")
    (hw / "in0_lcrit_alarm").write_text("0\n")
    assert health.under_voltage(vcgencmd=lambda *a: None, sys_root=tmp_path / "other").ok is True
    off_pi = health.under_voltage(vcgencmd=lambda *a: None, sys_root=tmp_path / "nothing")
    assert off_pi.ok is None and off_pi.detail == health.UNAVAILABLE


def _machine(tmp_path: Path, *, fstype: str = "ext4", options: str = "rw,noatime", errors: int = 0,
             temp_mdeg: int | None = 45000) -> tuple[Path, Path]:
    proc, sys_root = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    (proc / "self/mountinfo").write_text(
        f"22 1 179:2 / / {options} shared:1 - {fstype} /dev/mmcblk0p2 rw\n"
        "23 22 0:21 / /proc rw,relatime - proc proc rw\n")
    ext4 = sys_root / "fs/ext4/mmcblk0p2"
    ext4.mkdir(parents=True)
    (ext4 / "errors_count").write_text(f"{errors}\n")
    if temp_mdeg is not None:
        zone = sys_root / "class/thermal/thermal_zone0"
        zone.mkdir(parents=True)
        (zone / "type").write_text("cpu-thermal\n")
        (zone / "temp").write_text(f"{temp_mdeg}\n")
    return proc, sys_root


def test_filesystem_errors_on_the_sd_card(tmp_path: Path):
    proc, sys_root = _machine(tmp_path, errors=3)
    probe = health.filesystem_errors(proc_root=proc, sys_root=sys_root)
    assert probe.ok is False and probe.value == 3 and "SD card" in probe.detail
    proc2, sys2 = _machine(tmp_path / "b", options="ro,noatime")
    assert health.filesystem_errors(proc_root=proc2, sys_root=sys2).ok is False
    proc3, sys3 = _machine(tmp_path / "c", fstype="overlay")
    assert health.filesystem_errors(proc_root=proc3, sys_root=sys3).ok is None
    proc4, sys4 = _machine(tmp_path / "d")
    assert health.filesystem_errors(proc_root=proc4, sys_root=sys4).ok is True


def test_cpu_temperature(tmp_path: Path):
    _, hot = _machine(tmp_path / "hot", temp_mdeg=85300)
    probe = health.cpu_temperature(sys_root=hot)
    assert probe.ok is False and probe.value == 85.3 and "ventilation" in probe.detail
    _, cool = _machine(tmp_path / "cool", temp_mdeg=47800)
    assert health.cpu_temperature(sys_root=cool).value == 47.8
    _, none = _machine(tmp_path / "none", temp_mdeg=None)
    assert health.cpu_temperature(sys_root=none).detail == health.UNAVAILABLE


def test_free_disk_and_printer_paper(tmp_path: Path):
    assert health.free_disk(tmp_path).available
    assert health.free_disk(tmp_path, min_bytes=1 << 62).ok is False
    printer = FakeTicketPrinter()
    assert health.printer_paper(printer).ok is True
    printer.simulate_paper_out()
    assert health.printer_paper(printer).ok is False and health.printer_paper(printer).detail == "out of paper"
    assert health.printer_paper(None).ok is None


def test_every_probe_answers_on_this_machine_without_crashing():
    for probe in health.all_probes():
        assert probe.ok in (True, False, None)
        if probe.ok is None:
            assert probe.detail


def test_health_probes_attach_to_a_device_agent():
    class Agent:
        def __init__(self):
            self.checks, self.details = {}, {}

        def add_check(self, name, fn):
            self.checks[name] = fn

        def add_detail(self, name, fn):
            self.details[name] = fn

    agent, printer = Agent(), FakeTicketPrinter()
    health.attach_to_agent(agent, printer=printer)
    assert agent.checks["printer_paper"]() is True and "free_disk" in agent.checks
    printer.simulate_paper_out()
    assert agent.checks["printer_paper"]() is False and agent.details["printer_paper"]() == "out"


# -- the self-test run ------------------------------------------------------------------------------

def test_selftest_run_with_a_person_at_the_device():
    pins, printer, cards = MockFactory(), FakeTicketPrinter(), FakeCardReader()
    scanner_line = PtyDevice()
    scanner = SerialCodeScanner(port=scanner_line.path, gap_s=0.1)
    asked: list[str] = []

    def person(text: str) -> None:  # does what the prompt asks
        asked.append(text)
        if "button" in text:
            pins.pin(17).drive_low()
        elif "scan" in text:
            scanner_line.send(b"AP1001\r")
        elif "card" in text:
            cards.present_raw(encode_frame("E"))  # the reader's own "could not read" frame
    try:
        parts = Peripherals(printer=printer, lamp_pin=23, button_pin=17, pin_factory=pins, scanner=scanner,
                            card_reader=cards, device_id="kiosk-1")
        results = {r.step: r for r in run(parts, timeout=3, prompt=person)}
    finally:
        scanner.close()
        scanner_line.close()
        pins.reset()
    assert results["printer"].ok and "T000" in printer.last_text
    assert results["leds"].ok and results["button"].ok
    assert results["scanner"].ok and "AP1001" in results["scanner"].detail
    assert results["card_reader"].ok is False and "could not be read" in results["card_reader"].detail
    assert len(asked) == 3
    table = format_table(list(results.values()))
    assert re.search(r"card_reader\s+FAIL", table) and re.search(r"button\s+PASS", table)


def test_selftest_reports_paper_out_and_a_button_nobody_presses():
    pins, printer = MockFactory(), FakeTicketPrinter()
    printer.simulate_paper_out()
    try:
        results = {r.step: r for r in run(Peripherals(printer=printer, button_pin=17, pin_factory=pins),
                                          timeout=0.2, prompt=lambda t: None)}
    finally:
        pins.reset()
    assert results["printer"].ok is False and results["printer"].detail == "out of paper"
    assert results["button"].ok is False and "no press" in results["button"].detail


def _write_config(path: Path, broker_url: str, receipts: Path, scanner_dev: str) -> Path:
    path.write_text(f"""
[device]
id = "kiosk-7"
role = "kiosk"
site = "demo"

[server]
url = "http://127.0.0.1:8000"
token_env = "CLINICFLOW_TOKEN"

[broker]
url = "{broker_url}"

[hardware.printer]
adapter = "escpos_file"
device = "{receipts}"
paper_width_mm = 58
chinese_font = true

[hardware.scanner]
adapter = "serial"
device = "{scanner_dev}"

[hardware.card_reader]
adapter = "fake"
""")
    return path


def test_selftest_command_prints_a_table_and_publishes_it(tmp_path: Path, mosquitto, capsys):
    received: list[DeviceResponse] = []
    got = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    topic = topics.device("demo", "kiosk-7", "response")
    sub.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    sub.on_message = lambda c, u, m: (received.append(decode_payload(DeviceResponse, m.payload)), got.set())
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    receipts = tmp_path / "receipts.bin"
    config = _write_config(tmp_path / "kiosk.toml", mosquitto.url, receipts, "/dev/null-no-scanner")
    try:
        assert subscribed.wait(5)
        code = selftest_main(["--config", str(config), "--no-input"])
        assert got.wait(5)
    finally:
        sub.loop_stop()
        sub.disconnect()
    out = capsys.readouterr().out
    assert code == 1  # the scanner named in the file is not there
    assert "printer" in out and "PASS" in out and "scanner" in out and "FAIL" in out
    assert re.search(r"card_reader\s+SKIP", out)  # needs a person
    assert "T000" in escpos_preview.parse(receipts.read_bytes()).text  # the test ticket really went out
    [response] = received
    assert response.command == "self_test" and response.status == "error" and "scanner" in response.error
    steps = {r["step"]: r["ok"] for r in response.data["results"]}
    assert steps["printer"] is True and steps["scanner"] is False


def test_selftest_command_explains_a_bad_config(tmp_path: Path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nid = 'x'\n")
    assert selftest_main(["--config", str(bad), "--mqtt", "none"]) == 2
    assert "clinicflow selftest:" in capsys.readouterr().err


def test_speech_output_probe_tells_a_missing_sound_card_from_a_working_output():
    from hardware.speech.output_probe import probe_alsa_output

    missing = probe_alsa_output("hw:9,0")  # no 10th card on any machine here
    assert missing.ok is False and "no sound output hw:9,0" in missing.detail
    assert probe_alsa_output("null").ok is True  # ALSA's null device always opens
    assert probe_alsa_output("null", binary="/nonexistent/aplay").ok is None  # nobody could ask: unknown


def test_printer_probes_say_unknown_when_the_printer_cannot_tell():
    from hardware.escpos_status_dummy import StatusReplyDummy
    from hardware.ticket_printer import EscposTicketPrinter

    assert health.ticket_printer(None).value == "none"
    unknown = health.ticket_printer(EscposTicketPrinter(device="dummy:"))
    assert unknown.ok is None and unknown.value == "unknown"
    low = health.ticket_printer(EscposTicketPrinter(device=StatusReplyDummy(paper="low")))
    assert low.ok is True and low.value == "low" and "refill" in low.detail
    cover = health.ticket_printer(EscposTicketPrinter(device=StatusReplyDummy(cover_open=True)))
    assert cover.ok is False and cover.detail == "cover open"


def test_a_periodic_probe_asks_at_start_and_again_on_refresh():
    answers = iter([health.Probe("p", True), health.Probe("p", False, None, "broke")])
    probe = health.PeriodicProbe(lambda: next(answers), interval=0)
    assert probe.latest.ok is True
    assert probe.refresh().ok is False and probe.latest.detail == "broke"


def test_selftest_on_a_machine_without_the_sound_card_names_the_missing_output(tmp_path: Path):
    from hardware.speech import make_speaker

    speaker = make_speaker("espeak", audio_device="hw:9,0", cache_dir=tmp_path / "speech")
    try:
        results = {r.step: r for r in run(Peripherals(speaker=speaker), interactive=False)}
    finally:
        speaker.close()
    assert results["speech_output"].ok is False and "no sound output hw:9,0" in results["speech_output"].detail
    assert results["speaker"].ok is False
