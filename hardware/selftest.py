"""``clinicflow selftest``: exercise every peripheral a device's config names, print a pass/fail table, publish it.

    clinicflow selftest                                   # /etc/clinicflow/device.toml (or $CLINICFLOW_CONFIG)
    clinicflow selftest --config kiosk.toml --no-input    # skip the steps that need a person
    clinicflow selftest --config kiosk.toml --mqtt mqtt://127.0.0.1:1883 --json

Steps, each only when the config names the part:

| step | what it does | passes when |
| --- | --- | --- |
| printer | prints a test ticket with a QR code | the job was sent and paper is not out |
| speech_output | opens the ALSA output the speaker plays through | the device exists and opens |
| speaker | plays the chime and speaks a test phrase | both played without error |
| leds | blinks the button box's lamp three times | the pin could be driven (check by eye) |
| button | waits for a press of "call next" | pressed within ``--timeout`` |
| scanner | waits for any code to be scanned | a clean code within ``--timeout`` |
| card_reader | waits for a card | a valid card within ``--timeout`` |
| health | under-voltage, filesystem, temperature, disk | each probe ok (or unavailable here) |

The result goes to the device's MQTT ``response`` topic as a ``DeviceResponse`` for the
command ``self_test`` (status ``ok`` only if no step failed). Exit code 0 when every step
passed or was skipped, 1 when one failed, 2 when the config could not be read.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hardware import health

if TYPE_CHECKING:
    from config.broker_settings import BrokerSettings

log = logging.getLogger("clinicflow.selftest")


@dataclass(frozen=True)
class StepResult:
    """One row of the table: ``ok`` None means skipped (``detail`` says why)."""

    step: str
    ok: bool | None
    detail: str
    seconds: float = 0.0

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]


@dataclass
class Peripherals:
    """The parts to test, already built (from a device config by ``from_config``, or by a test)."""

    printer: Any = None
    speaker: Any = None
    lamp_pin: int | str | None = None
    button_pin: int | str | None = None
    pin_factory: Any = None
    scanner: Any = None
    card_reader: Any = None
    device_id: str = "device"
    problems: tuple[str, ...] = ()

    def close(self) -> None:
        for part in (self.printer, self.speaker, self.scanner, self.card_reader):
            close = getattr(part, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.debug("closing %r failed", part, exc_info=True)


def printer_url(section: Any) -> str | None:
    """The ``EscposTicketPrinter`` device URL for a ``[hardware.printer]`` section."""
    adapter = section.adapter
    if adapter == "escpos_usb":
        return f"usb://{section.usb_vendor:04x}:{section.usb_product:04x}"
    if adapter == "escpos_serial":
        return f"serial://{section.device}"
    if adapter == "escpos_network":
        host = section.host
        return f"tcp://{host}" if ":" in host else f"tcp://{host}:9100"
    if adapter == "escpos_file":
        return f"file://{section.device}"
    return None


def printer_profile(section: Any) -> str:
    return f"{'cn' if section.chinese_font else 'intl'}-{section.paper_width_mm}"


def from_config(config: Any) -> Peripherals:
    """Build the adapters a ``config.schema.DeviceConfig`` names; a part that cannot be opened is a problem, not a crash."""
    hw = config.hardware
    parts = Peripherals(device_id=config.device.id)
    problems: list[str] = []
    if hw.printer.adapter == "fake":
        from hardware.ticket_printer import FakeTicketPrinter

        parts.printer = FakeTicketPrinter(profile=printer_profile(hw.printer))
    elif (url := printer_url(hw.printer)) is not None:
        from hardware.ticket_printer import EscposTicketPrinter

        try:
            parts.printer = EscposTicketPrinter(device=url, profile=printer_profile(hw.printer))
        except Exception as exc:
            problems.append(f"printer: {exc}")
    if hw.speaker.adapter != "none":
        try:
            from hardware.speech import make_speaker

            parts.speaker = make_speaker(hw.speaker.adapter, audio_device=hw.speaker.audio_device)
        except Exception as exc:
            problems.append(f"speaker: {exc}")
    if hw.buttons.adapter != "none":
        from hardware.pins import make_pin_factory

        try:
            parts.pin_factory = make_pin_factory("mock" if hw.buttons.adapter == "fake" else hw.buttons.pin_factory)
        except Exception as exc:
            problems.append(f"buttons: {exc}")
        parts.lamp_pin = hw.buttons.lamp_pin
        parts.button_pin = hw.buttons.call_next_pin
    if hw.scanner.adapter != "none":
        try:
            if hw.scanner.adapter == "serial":
                from hardware.code_scanner import SerialCodeScanner

                parts.scanner = SerialCodeScanner(port=hw.scanner.device or "/dev/ttyACM0")
            else:
                from hardware.code_scanner import EvdevCodeScanner

                if not hw.scanner.device:
                    raise ValueError("set device = \"/dev/input/by-id/...-event-kbd\" under [hardware.scanner]")
                parts.scanner = EvdevCodeScanner(device=hw.scanner.device)
        except Exception as exc:
            problems.append(f"scanner: {exc}")
    if hw.card_reader.adapter == "serial":
        from hardware.card_reader import SerialCardReader

        try:
            parts.card_reader = SerialCardReader(port=hw.card_reader.device or "/dev/ttyUSB1")
        except Exception as exc:
            problems.append(f"card_reader: {exc}")
    elif hw.card_reader.adapter == "fake":
        from hardware.card_reader import FakeCardReader

        parts.card_reader = FakeCardReader()
    parts.problems = tuple(problems)
    return parts


def _timed(step: str, fn: Callable[[], tuple[bool, str]]) -> StepResult:
    started = time.monotonic()
    try:
        ok, detail = fn()
    except Exception as exc:  # every failure becomes a row, never a traceback
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return StepResult(step, ok, detail, round(time.monotonic() - started, 2))


def _test_printer(printer: Any, device_id: str) -> tuple[bool, str]:
    from hardware.ticket_printer import PaperState, TicketSlip

    before = printer.status()
    if before.paper is PaperState.OUT:
        return False, "out of paper"
    printer.print_ticket(TicketSlip(
        number="T000", department_name={"zh": "设备自检", "en": "self-test"}, room_name={"zh": device_id, "en": device_id},
        status_url=f"clinicflow-selftest:{device_id}:{int(time.time())}", issued_at=datetime.now(timezone.utc), language="zh"))
    after = printer.status()
    paper = after.paper.value
    return after.paper is not PaperState.OUT, f"test ticket printed; paper {paper}" + (
        f" ({after.detail})" if after.detail else "")


def _test_speaker(speaker: Any) -> tuple[bool, str]:
    speaker.chime()
    speaker.say("设备自检，语音正常", "zh")
    speaker.say("Self-test: speech works", "en")
    return bool(speaker.healthy), "chime and two phrases played" if speaker.healthy else (speaker.last_error or "failed")


def _test_leds(pin: int | str, factory: Any) -> tuple[bool, str]:
    from gpiozero import LED

    with LED(pin, pin_factory=factory) as led:
        led.blink(on_time=0.2, off_time=0.2, n=3, background=False)
    return True, f"lamp on pin {pin} blinked 3 times: check it by eye"


def _test_button(pin: int | str, factory: Any, timeout: float, prompt: Callable[[str], None]) -> tuple[bool, str]:
    from hardware.debounce import DebouncedButton

    pressed = threading.Event()
    with DebouncedButton(pin, pin_factory=factory, name="selftest") as button:
        button.when_pressed = pressed.set
        prompt(f"press the call-next button within {timeout:.0f} s")
        if pressed.wait(timeout):
            return True, f"button on pin {pin} pressed"
    return False, f"no press within {timeout:.0f} s (pin {pin}): check the wiring"


def _test_scanner(scanner: Any, timeout: float, prompt: Callable[[str], None]) -> tuple[bool, str]:
    scanner.clear()
    prompt(f"scan any barcode or QR code within {timeout:.0f} s")
    code = scanner.read(timeout)
    shown = code if len(code) <= 24 else code[:21] + "..."
    return True, f"read {shown!r}"


def _test_card_reader(reader: Any, timeout: float, prompt: Callable[[str], None]) -> tuple[bool, str]:
    reader.clear()
    prompt(f"present an ID or insurance card within {timeout:.0f} s")
    card = reader.read(timeout)
    return True, f"read {card.masked}"


def run(parts: Peripherals, *, interactive: bool = True, timeout: float = 15.0,
        prompt: Callable[[str], None] = lambda text: print(f">>> {text}", flush=True)) -> list[StepResult]:
    """Run every step for ``parts``; never raises."""
    results = [StepResult(p.split(":", 1)[0], False, p) for p in parts.problems]
    failed_parts = {r.step for r in results}
    if parts.printer is not None:
        results.append(_timed("printer", lambda: _test_printer(parts.printer, parts.device_id)))
    if parts.speaker is not None:
        player = getattr(parts.speaker, "player", None)
        if player is not None:  # the sound output first: a missing card explains a failed speaker step
            from hardware.speech.output_probe import probe_alsa_output

            probe = probe_alsa_output(player.device)
            results.append(StepResult("speech_output", probe.ok, probe.detail))
        results.append(_timed("speaker", lambda: _test_speaker(parts.speaker)))
    if parts.lamp_pin is not None and "buttons" not in failed_parts:
        results.append(_timed("leds", lambda: _test_leds(parts.lamp_pin, parts.pin_factory)))
    waiting = [("button", parts.button_pin is not None and "buttons" not in failed_parts,
                lambda: _test_button(parts.button_pin, parts.pin_factory, timeout, prompt)),
               ("scanner", parts.scanner is not None, lambda: _test_scanner(parts.scanner, timeout, prompt)),
               ("card_reader", parts.card_reader is not None, lambda: _test_card_reader(parts.card_reader, timeout, prompt))]
    for step, configured, fn in waiting:
        if not configured:
            continue
        if interactive:
            results.append(_timed(step, fn))
        else:
            results.append(StepResult(step, None, "needs a person at the device (run without --no-input)"))
    for probe in health.all_probes():
        if probe.name == "printer_paper":
            continue  # the printer step covers it
        results.append(StepResult(probe.name, probe.ok, probe.detail or str(probe.value)))
    return results


def format_table(results: list[StepResult]) -> str:
    width = max([len(r.step) for r in results] + [4])
    lines = [f"{'step'.ljust(width)}  result  time    detail", f"{'-' * width}  ------  ------  {'-' * 30}"]
    for r in results:
        lines.append(f"{r.step.ljust(width)}  {r.mark:<6}  {r.seconds:5.1f}s  {r.detail}")
    passed = sum(r.ok is True for r in results)
    failed = sum(r.ok is False for r in results)
    skipped = sum(r.ok is None for r in results)
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def publish(results: list[StepResult], *, broker: "BrokerSettings", site: str, device_id: str,
            timeout: float = 10.0) -> bool:
    """Publish the table as a ``DeviceResponse`` (command ``self_test``) on the device's response topic.

    It connects with the device's own credentials: where the broker binds client ids to users it
    briefly takes the running app's connection, which the app takes back when it reconnects.
    """
    from clinicflow.mqtt import PahoMessageBus
    from protocol import topics
    from protocol.payloads import DeviceResponse

    failed = [r.step for r in results if r.ok is False]
    response = DeviceResponse(
        ts=datetime.now(timezone.utc), device=device_id, command="self_test",
        transaction=f"selftest-{int(time.time())}", status="error" if failed else "ok",
        data={"results": [asdict(r) for r in results]},
        error=f"failed: {', '.join(failed)}" if failed else None)
    bus = PahoMessageBus.from_settings(broker, client_id=f"{device_id}-selftest")
    bus.start()
    try:
        if not bus.wait_connected(timeout):
            return False
        info = bus.publish(topics.device(site, device_id, "response"), response, qos=1)
        info.wait_for_publish(timeout)
        return info.is_published()
    finally:
        bus.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="clinicflow selftest", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="device file (default: $CLINICFLOW_CONFIG or /etc/clinicflow/device.toml)")
    p.add_argument("--no-input", action="store_true", help="skip steps that wait for a person (button, scan, card)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a press, a scan or a card")
    p.add_argument("--mqtt", help="broker URL to publish the result to (default: the config's broker; 'none' to skip)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from config.loader import load_config

        config = load_config(args.config)
    except Exception as exc:
        for line in getattr(exc, "problems", [str(exc)]):
            print(f"clinicflow selftest: {line}", file=sys.stderr)
        return 2
    parts = from_config(config)
    try:
        results = run(parts, interactive=not args.no_input, timeout=args.timeout)
    finally:
        parts.close()
    print(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=2) if args.json else format_table(results))
    if args.mqtt != "none":
        try:
            from config.broker_settings import BrokerSettings, broker_settings

            broker = BrokerSettings(url=args.mqtt) if args.mqtt else broker_settings(config)
            if publish(results, broker=broker, site=config.device.site, device_id=config.device.id):
                print(f"result published to {config.device.id}'s response topic", file=sys.stderr)
            else:
                print("clinicflow selftest: could not publish the result (broker unreachable)", file=sys.stderr)
        except Exception as exc:
            print(f"clinicflow selftest: could not publish the result: {exc}", file=sys.stderr)
    return 1 if any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
