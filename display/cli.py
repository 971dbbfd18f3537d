"""``clinicflow display``: the call screen's composition root (chooses the speaker, the broker, the layout).

    clinicflow display --broker mqtt://127.0.0.1:1883 --site demo --rooms r1 --layout door
    clinicflow display --layout hall --languages zh,en,yue --size 800x480 --speaker espeak
    xvfb-run -a clinicflow display --rooms r1 --screenshot /tmp/door.png   # headless: PNG, then exit
    CLINICFLOW_CONFIG=/etc/clinicflow/device.toml clinicflow display      # a provisioned screen (systemd)

With ``--config FILE`` (default ``$CLINICFLOW_CONFIG``) the device file gives every option
(see ``options_from_config``); flags given on the command line still win over it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from clinicflow.logs import setup_logging
from protocol.announce import SUPPORTED_LANGUAGES


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 1920x1080") from None
    if not (100 <= w <= 8000 and 100 <= h <= 8000):
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range")
    return w, h


def _short_name(text: str) -> tuple[str, str, str]:
    """``r6:zh=耳鼻喉科 6 诊室`` -> ("r6", "zh", "耳鼻喉科 6 诊室")."""
    where, sep, name = text.partition("=")
    room, colon, language = where.partition(":")
    if not (sep and colon and room and language and name.strip()):
        raise argparse.ArgumentTypeError(f"short name {text!r} must look like r6:zh=耳鼻喉科 6 诊室")
    return room.strip(), language.strip(), name.strip()


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# A device file's role -> the screen's layout; other roles belong to other apps.
LAYOUTS = {"door_screen": "door", "hall_board": "hall"}
# The window a device file's orientation asks for (a Pi's usual HDMI screen, turned or not).
ORIENTATION_SIZES = {"landscape": (1920, 1080), "portrait": (1080, 1920)}


def options_from_config(config: Any) -> dict[str, Any]:
    """This app's option values (argparse dests) from a validated ``DeviceConfig``.

    Reads the broker password it points to (``ConfigError`` if unreadable); the display
    does not use the queue server's API, so its token is deliberately not read.
    """
    from config.broker_settings import broker_options
    from config.schema import ConfigError

    layout = LAYOUTS.get(config.device.role)
    if layout is None:
        raise ConfigError(f"device.role: this file is for a {config.device.role}, not a call screen. "
                          f"Fix: run `clinicflow {'kiosk' if config.device.role == 'kiosk' else 'buttonbox'}`, "
                          "or set role = \"door_screen\" or \"hall_board\"")
    from clinicflow.agent import settings_in_force

    settings, speaker = settings_in_force(config), config.hardware.speaker
    return {
        "device_id": config.device.id, "site": config.device.site, "layout": layout,
        "rooms": list(settings.rooms), "languages": list(settings.languages), "repeats": settings.announce_repeat,
        "size": ORIENTATION_SIZES[settings.orientation],
        **broker_options(config),  # URL, user, password and CA: config.broker_settings
        "speaker": speaker.adapter, "audio_device": speaker.audio_device, "fullscreen": True,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags over the device file (``--config`` / ``$CLINICFLOW_CONFIG``) over built-in defaults."""
    from config.loader import parse_args_with_device_file

    return parse_args_with_device_file(parser(), argv, options_from_config)


def parser() -> argparse.ArgumentParser:
    from config.loader import add_config_option

    p = argparse.ArgumentParser(prog="clinicflow display", description="Run a waiting-room call screen (Kivy).")
    add_config_option(p, "every option below")
    p.add_argument("--broker", default=os.environ.get("CLINICFLOW_BROKER", "mqtt://127.0.0.1:1883"), help="MQTT broker URL")
    p.add_argument("--site", default="demo", help="site id (default demo)")
    p.add_argument("--rooms", type=_list, default=[], help="room ids, comma separated (door: one; hall: empty = all)")
    p.add_argument("--ca-file", default=None, help="CA certificate that signed an mqtts:// broker's certificate")
    p.add_argument("--layout", choices=["door", "hall"], default="door")
    p.add_argument("--languages", type=_list, default=["zh", "en"], help="spoken and shown, in order (zh, en, yue)")
    p.add_argument("--repeats", type=int, default=2, help="times each call is announced (default 2)")
    p.add_argument("--size", type=_size, default=(1920, 1080), help="window size WxH (1920x1080, 800x480, 1080x1920...)")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--device-id", default=None, help="this screen's device id (default display-<rooms>)")
    p.add_argument("--speaker", choices=["espeak", "pyttsx3", "fake", "none"], default="espeak")
    p.add_argument("--audio-device", default=None, help="ALSA device for aplay (default: the default card)")
    p.add_argument("--speech-cache", type=Path, default=None, help="where synthesised phrases are cached")
    p.add_argument("--short-name", type=_short_name, action="append", default=[], metavar="ROOM:LANG=TEXT",
                   help="a room's short name in one language, shown where the full name cannot fit legibly "
                        "(repeatable), e.g. r6:zh=耳鼻喉科 6 诊室")
    p.add_argument("--offline-after", type=float, default=30.0, help="seconds without broker before the offline banner")
    p.add_argument("--watchdog", type=float, default=30.0, help="exit with code 3 if the UI thread stalls this long (0: off)")
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG after --screenshot-after seconds, then exit")
    p.add_argument("--screenshot-after", type=float, default=3.0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    unknown = [lang for lang in args.languages if lang not in SUPPORTED_LANGUAGES]
    if unknown or not args.languages:
        print(f"clinicflow display: unsupported language(s) {unknown}; choose from {', '.join(SUPPORTED_LANGUAGES)}", file=sys.stderr)
        return 2
    if args.layout == "door" and len(args.rooms) != 1:
        print("clinicflow display: a door screen needs exactly one room, e.g. --rooms r1", file=sys.stderr)
        return 2

    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    Config.set("graphics", "width", str(args.size[0]))
    Config.set("graphics", "height", str(args.size[1]))
    Config.set("graphics", "fullscreen", "auto" if args.fullscreen else "0")
    Config.set("kivy", "exit_on_escape", "0")

    from display.app import CallScreenApp, kivy_ui_call
    from display.runtime import CallScreen
    from hardware.speech import make_speaker

    short_names: dict[str, dict[str, str]] = {}
    for room, language, name in args.short_name:
        short_names.setdefault(room, {})[language] = name
    speaker = make_speaker(args.speaker, audio_device=args.audio_device, cache_dir=args.speech_cache)
    bus = None
    if args.ca_file:  # an mqtts:// broker signed by the site's own CA: build the bus CallScreen would, with it
        from clinicflow.mqtt import PahoMessageBus
        from protocol import topics

        device_id = args.device_id or f"display-{'-'.join(args.rooms) or 'hall'}"
        bus = PahoMessageBus(args.broker, client_id=f"clinicflow-{device_id}", ca_certs=str(args.ca_file),
                             availability_topic=topics.device(args.site, device_id, "availability"))
    screen = CallScreen(
        args.broker, args.site, args.rooms, speaker=speaker, layout=args.layout, languages=args.languages,
        repeats=args.repeats, device_id=args.device_id, offline_after=args.offline_after,
        watchdog_timeout=args.watchdog or None, ui_call=kivy_ui_call, tick_interval=None, bus=bus,
        short_names=short_names,
    )
    if hasattr(screen.status, "on_command"):  # the fleet's remote screenshot
        from clinicflow.screen_capture import kivy_screenshot_command

        screen.status.on_command("screenshot", kivy_screenshot_command())
    CallScreenApp(screen, screenshot=args.screenshot, screenshot_after=args.screenshot_after).run()
    if speaker is not None:
        speaker.close()
    return 0
