"""``clinicflow kiosk``: the composition root of the kiosk (picks the devices, starts the window).

    clinicflow kiosk --server http://127.0.0.1:8000 --token-file clinicflow-data/tokens.json
    clinicflow kiosk --printer usb:0416:5011 --report-printer cups:Reports --card-reader serial:/dev/ttyUSB1 \\
                     --terminal serial:/dev/ttyUSB2 --speaker espeak --panel gpio --broker mqtt://server:1883
    clinicflow kiosk --screenshot home.png       # headless: draw Home once, save it, exit
    clinicflow kiosk --walkthrough AP1001 --screenshot-dir shots/   # touch the keypad, check in, save both screens

    CLINICFLOW_CONFIG=/etc/clinicflow/device.toml clinicflow kiosk   # a provisioned kiosk (systemd)

Everything below the window is in ``kiosk.viewmodels``; this module only wires adapters.
With ``--config FILE`` (default ``$CLINICFLOW_CONFIG``) the device file gives the options
(see ``options_from_config``); flags given on the command line still win over it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("kiosk")


KIOSK_LANGUAGES = ("zh", "en")  # the languages the kiosk's screens are translated into


def printer_spec(printer: Any) -> tuple[str, str | None]:
    """A device file's ``[hardware.printer]`` -> this app's ``--printer`` spec and receipt profile."""
    adapter = printer.adapter
    if adapter == "escpos_usb":
        spec = f"usb:{printer.usb_vendor:04x}:{printer.usb_product:04x}"
    elif adapter == "escpos_serial":
        spec = f"serial:{printer.device}"
    elif adapter == "escpos_network":
        spec = f"network:{printer.host}"
    elif adapter == "escpos_file":
        spec = f"dummy-file:{printer.device}"
    else:
        spec = adapter  # fake | none
    # A printer with a GB18030 font prints Chinese as text; others get it as images.
    profile = f"{'cn' if printer.chinese_font else 'intl'}-{printer.paper_width_mm}"
    return spec, profile


def options_from_config(config: Any) -> dict[str, Any]:
    """This app's option values (argparse dests) from a validated ``DeviceConfig``.

    Reads the API token and the broker password the file points to (``ConfigError`` if unreadable).
    """
    from config.broker_settings import broker_options
    from config.loader import api_token
    from config.schema import ConfigError

    from clinicflow.agent import settings_in_force
    from kiosk.remote_config import refuse_fake_hardware

    if config.device.role != "kiosk":
        raise ConfigError(f"device.role: this file is for a {config.device.role}, not a kiosk. "
                          "Fix: run the app for that role, or set role = \"kiosk\"")
    refuse_fake_hardware(config)
    settings, hw = settings_in_force(config), config.hardware
    offered = [lang for lang in settings.languages if lang in KIOSK_LANGUAGES]
    language = settings.default_language if settings.default_language in KIOSK_LANGUAGES else (offered or ["zh"])[0]
    spec, profile = printer_spec(hw.printer)
    scanner = {"keyboard_wedge": "keyboard", "serial": f"serial:{hw.scanner.device}"}.get(hw.scanner.adapter, "none")
    # A fake card reader produces no cards without a test driving it: a kiosk runs without one.
    card_reader = f"serial:{hw.card_reader.device}" if hw.card_reader.adapter == "serial" else "none"
    return {
        "device_id": config.device.id, "site": config.device.site,
        "server": config.server.url, "token": api_token(config),
        **broker_options(config),  # URL, user, password and CA: config.broker_settings
        "language": language, "idle_timeout": float(settings.idle_timeout_s),
        "voice": cantonese_voice(settings.languages),
        "printer": spec, "printer_profile": profile, "scanner": scanner, "card_reader": card_reader,
        "speaker": hw.speaker.adapter, "audio_device": hw.speaker.audio_device,
        # A provisioned kiosk has no setting for a terminal or report printer: none, never a fake one.
        "terminal": "none", "report_printer": "none", "fullscreen": True,
    }


def cantonese_voice(languages: Any) -> str:
    """``--voice``: a kiosk whose device languages list ``yue`` reads its Chinese screens in Cantonese
    (there is no Cantonese catalogue: Cantonese speakers read written Chinese; docs/languages.md)."""
    return "zh=yue" if "yue" in languages and "zh" in languages else ""


def spoken_languages(value: str) -> dict[str, str]:
    """``--voice zh=yue``: the voice each screen language is read in (empty: each in its own)."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        screen, _, voice = item.partition("=")
        if screen not in KIOSK_LANGUAGES or voice not in ("zh", "en", "yue"):
            raise SystemExit(f"clinicflow kiosk: --voice takes SCREEN=VOICE pairs like zh=yue "
                             f"(screens: {', '.join(KIOSK_LANGUAGES)}; voices: zh, en, yue), not {item!r}")
        pairs[screen] = voice
    return pairs


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Flags over the device file (``--config`` / ``$CLINICFLOW_CONFIG``) over built-in defaults."""
    from config.loader import parse_args_with_device_file

    return parse_args_with_device_file(parser(), argv, options_from_config)


def parser() -> argparse.ArgumentParser:
    from config.loader import add_config_option

    p = argparse.ArgumentParser(prog="clinicflow kiosk", description="Run the self-service kiosk.")
    add_config_option(p, "the options below")
    p.add_argument("--server", default=os.environ.get("CLINICFLOW_SERVER", "http://127.0.0.1:8000"),
                   help="queue server base URL")
    p.add_argument("--token", default=os.environ.get("CLINICFLOW_KIOSK_TOKEN"), help="the kiosk's bearer token")
    p.add_argument("--token-file", help="a server's tokens.json to take the 'kiosk' token from (demo)")
    p.add_argument("--printer", default="fake",
                   help="receipt printer: none | fake | dummy-file:PATH | dummy-status:STATEFILE | usb:VID:PID | "
                        "network:HOST[:PORT] | serial:DEV")
    p.add_argument("--printer-profile", default=None, help="receipt printer profile (cn-58, cn-80, intl-58, ...)")
    p.add_argument("--report-printer", default="fake", help="A4 report printer: none | fake | cups:QUEUE")
    p.add_argument("--card-reader", default="none", help="none | serial:PORT")
    p.add_argument("--scanner", default="keyboard", help="keyboard (keyboard wedge) | serial:PORT | evdev:DEVICE")
    p.add_argument("--terminal", default="fake", help="bank card terminal: none | fake | serial:PORT")
    p.add_argument("--speaker", default="espeak", help="voice mode: espeak | pyttsx3 | fake | none")
    p.add_argument("--audio-device", default=None, help="ALSA device for the voice (default: the default card)")
    p.add_argument("--panel", default="none", help="help and voice keys: none | gpio")
    p.add_argument("--language", default="zh", choices=["zh", "en"])
    p.add_argument("--voice", default="", metavar="SCREEN=VOICE",
                   help="read a screen language in another voice, e.g. zh=yue (Chinese screens in Cantonese)")
    p.add_argument("--size", default="1280x800", help="window size WxH")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--journal", default=os.environ.get("CLINICFLOW_KIOSK_JOURNAL", "clinicflow-data/kiosk-journal.sqlite3"),
                   help="SQLite file of payments in flight")
    p.add_argument("--device-id", default=os.environ.get("CLINICFLOW_DEVICE_ID", "kiosk-1"))
    p.add_argument("--site", default="demo")
    p.add_argument("--timezone", default="Asia/Shanghai", help="the hospital's time zone (screens and slips)")
    p.add_argument("--broker", default=None, help="MQTT broker URL for the device status (optional)")
    p.add_argument("--ca-file", default=None, help="CA certificate that signed an mqtts:// broker's certificate")
    p.add_argument("--idle-timeout", type=float, default=60.0)
    p.add_argument("--watchdog", type=float, default=30.0, help="exit with code 3 if the UI thread stalls this long (0: off)")
    p.add_argument("--symptom-guide", default=None, help="symptom guide TOML (default: the shipped one)")
    p.add_argument("--screenshot", default=None, help="headless: draw Home, save this PNG, exit")
    p.add_argument("--walkthrough", default=None, metavar="APPOINTMENT",
                   help="headless: check this appointment in by touches and save screenshots (--screenshot-dir)")
    p.add_argument("--screenshot-dir", default="kiosk-screenshots")
    return p


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return args.token
    if args.token_file:
        return json.loads(Path(args.token_file).read_text())["kiosk"]["token"]
    return None


def make_ticket_printer(spec: str, profile: str | None) -> Any:
    """Receipt printer from a command-line spec (python-escpos device URLs underneath)."""
    from hardware.ticket_printer import EscposTicketPrinter, FakeTicketPrinter

    if spec == "none":  # no receipt printer fitted: the ticket screen says so and shows the number
        return None
    if spec == "fake":
        return FakeTicketPrinter(profile=profile)
    kind, _, rest = spec.partition(":")
    if kind == "dummy-status":  # python-escpos Dummy answering real-time status from a state file (tests, demos)
        from hardware.escpos_status_dummy import StatusReplyDummy

        return EscposTicketPrinter(device=StatusReplyDummy(state_file=rest or None), profile=profile)
    url = {"dummy-file": f"file://{rest}", "usb": f"usb://{rest}", "serial": f"serial://{rest}",
           "network": f"tcp://{rest if ':' in rest else rest + ':9100'}"}.get(kind)
    if url is None:
        raise SystemExit(f"clinicflow kiosk: unknown --printer {spec!r}")
    return EscposTicketPrinter(device=url, profile=profile)


def make_devices(args: argparse.Namespace) -> dict[str, Any]:
    devices: dict[str, Any] = {"printer": make_ticket_printer(args.printer, args.printer_profile)}
    if args.report_printer == "fake":
        from hardware.report_printer import FakeReportPrinter

        devices["report_printer"] = FakeReportPrinter()
    elif args.report_printer.startswith("cups:"):
        from hardware.report_printer import CupsReportPrinter

        devices["report_printer"] = CupsReportPrinter(queue=args.report_printer[5:])
    if args.terminal == "fake":
        from hardware.payment_terminal import FakePaymentTerminal

        devices["terminal"] = FakePaymentTerminal()
    elif args.terminal.startswith("serial:"):
        from hardware.payment_terminal import SerialPaymentTerminal

        devices["terminal"] = SerialPaymentTerminal(port=args.terminal[7:])
    if args.speaker != "none":
        from hardware.speech import FakeSpeaker, make_speaker

        try:
            devices["speaker"] = make_speaker(args.speaker, audio_device=getattr(args, "audio_device", None))
        except Exception as exc:  # no engine installed: the kiosk still works, voice mode shows text only
            log.warning("speaker %s unavailable (%s); voice mode will be silent", args.speaker, exc)
            devices["speaker"] = FakeSpeaker()
    return devices


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from clinicflow.logs import setup_logging

    setup_logging()  # one line per event (Kivy's records through Python logging), before Kivy is imported
    token = _token(args)
    if args.walkthrough:
        from kiosk.ui.driver import main as drive

        return drive(["--server", args.server, "--token=" + (token or ""), "--out", args.screenshot_dir,
                      "--report", str(Path(args.screenshot_dir) / "walkthrough.json"), "--scenario", "checkin-touch",
                      "--appointment", args.walkthrough, "--size", args.size])

    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "fullscreen", "auto" if args.fullscreen else "0")
    Config.set("kivy", "exit_on_escape", "0")

    from kivy.clock import Clock, mainthread

    from kiosk.clock import KivyScheduler
    from kiosk.payment_journal import PaymentJournal, reconcile
    from kiosk.server_client import KioskServerClient
    from kiosk.symptom_guide import SymptomGuide
    from kiosk.tasks import ThreadTasks
    from display.watchdog import Watchdog
    from kiosk.ui.app import KioskApp
    from kiosk.viewmodels import KioskSettings, KioskViewModel
    from protocol.errors import ClinicflowError

    devices = make_devices(args)
    client = KioskServerClient(args.server, token=token)
    journal = PaymentJournal(args.journal)
    tasks = ThreadTasks()
    from kiosk.voice import KioskVoice

    speech = KioskVoice(devices.get("speaker"))  # one speech worker: newest first, cut by any key
    vm = KioskViewModel(
        client=client, tasks=tasks, speech=speech, clock=KivyScheduler(), journal=journal,
        settings=KioskSettings(device_id=args.device_id, site=args.site, idle_timeout=args.idle_timeout,
                               timezone=args.timezone, spoken_language=spoken_languages(args.voice)),
        guide=SymptomGuide.load(args.symptom_guide) if args.symptom_guide else None, language=args.language,
        # the speaker is the voice worker's; the fleet agent below still probes it (devices keeps it)
        **{name: device for name, device in devices.items() if name != "speaker"})

    # Payments interrupted by a crash or power cut: settle them now, and keep trying while the server is away.
    def settle(_dt: float = 0) -> None:
        def work() -> Any:
            return reconcile(journal, client, devices.get("terminal"))

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                log.warning("payment reconciliation postponed: %s", error)
                Clock.schedule_once(settle, 30)
            elif result:
                log.warning("reconciled %d interrupted payments: %s", len(result), result)
        tasks.run(work, done)

    # Input devices call in from their own threads: bridge into Kivy's thread.
    on_scan, on_card = mainthread(vm.on_scan), mainthread(vm.on_card)
    if args.scanner.startswith("serial:"):
        from hardware.code_scanner import SerialCodeScanner

        SerialCodeScanner(port=args.scanner[7:]).when_scanned = on_scan
    elif args.scanner.startswith("evdev:"):
        from hardware.code_scanner import EvdevCodeScanner

        EvdevCodeScanner(device=args.scanner[6:]).when_scanned = on_scan
    if args.card_reader.startswith("serial:"):
        from hardware.card_reader import SerialCardReader

        SerialCardReader(port=args.card_reader[7:]).when_card = lambda card: on_card(card.number)
    if args.panel == "gpio":
        from hardware.kiosk_panel import KioskPanel

        panel = KioskPanel()
        panel.when_key = lambda key: Clock.schedule_once(lambda _dt: vm.on_panel_key(key), 0)

    agent = _start_agent(args, vm, devices) if args.broker else None
    # A frozen UI must be restarted: the UI thread beats once a second; a stall of --watchdog seconds
    # exits with code 3 (the unit restarts it), and the beats are systemd's WatchdogSec= pings too.
    watchdog = Watchdog(timeout=args.watchdog).start() if args.watchdog else None

    def beat(_dt: float) -> None:
        if watchdog is not None:
            watchdog.beat()
        if agent is not None:
            agent.heartbeat()
    Clock.schedule_interval(beat, 1.0)

    app = KioskApp(vm)
    if args.screenshot:
        def snap(_dt: float) -> None:
            from kivy.core.window import Window

            written = Window.screenshot(name=args.screenshot)
            if written and written != args.screenshot:
                Path(written).replace(args.screenshot)
            print(f"kiosk screenshot: {args.screenshot}")
            app.stop()
        Clock.schedule_once(snap, 2.0)
    Clock.schedule_once(settle, 0.5)
    try:
        app.run()
    except ClinicflowError as exc:
        print(f"clinicflow kiosk: {exc}", file=sys.stderr)
        return 1
    finally:
        tasks.shutdown()
    return 0


def _start_agent(args: argparse.Namespace, vm: Any, devices: dict[str, Any]) -> Any:
    """Publish the kiosk's health (printer paper, server reachable) as retained device status."""
    from clinicflow.agent import DeviceAgent
    from clinicflow.mqtt import PahoMessageBus
    from protocol import topics

    bus = PahoMessageBus(args.broker, client_id=f"kiosk-{args.device_id}", ca_certs=args.ca_file,
                         availability_topic=topics.device(args.site, args.device_id, "availability"))
    from clinicflow.screen_capture import kivy_screenshot_command
    from kivy.clock import Clock
    from kiosk.remote_config import attach_kiosk

    agent = DeviceAgent(bus, site=args.site, device_id=args.device_id, role="kiosk",
                        settings={"idle_timeout_s": int(args.idle_timeout), "languages": list(KIOSK_LANGUAGES),
                                  "default_language": args.language})
    attach_kiosk(agent, vm, devices, audio_device=args.audio_device, screenshot=kivy_screenshot_command(),
                 ui_call=lambda fn: Clock.schedule_once(lambda _dt: fn(), 0))
    agent.add_detail("printer_fault", lambda: vm.printer_fault or None)
    vm.bind(printer_fault=lambda *_: agent.publish_status_now())
    bus.start()
    agent.start()
    return agent


if __name__ == "__main__":
    sys.exit(main())
