"""``clinicflow display``: the call screen's composition root (chooses the speaker, the broker, the layout).

    clinicflow display --broker mqtt://127.0.0.1:1883 --site demo --rooms r1 --layout door
    clinicflow display --layout hall --languages zh,en,yue --size 800x480 --speaker espeak
    xvfb-run -a clinicflow display --rooms r1 --screenshot /tmp/door.png   # headless: PNG, then exit
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clinicflow display", description="Run a waiting-room call screen (Kivy).")
    p.add_argument("--broker", default=os.environ.get("CLINICFLOW_BROKER", "mqtt://127.0.0.1:1883"), help="MQTT broker URL")
    p.add_argument("--site", default="demo", help="site id (default demo)")
    p.add_argument("--rooms", type=_list, default=[], help="room ids, comma separated (door: one; hall: empty = all)")
    p.add_argument("--layout", choices=["door", "hall"], default="door")
    p.add_argument("--languages", type=_list, default=["zh", "en"], help="spoken and shown, in order (zh, en, yue)")
    p.add_argument("--repeats", type=int, default=2, help="times each call is announced (default 2)")
    p.add_argument("--size", type=_size, default=(1920, 1080), help="window size WxH (1920x1080, 800x480, 1080x1920...)")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--device-id", default=None, help="this screen's device id (default display-<rooms>)")
    p.add_argument("--speaker", choices=["espeak", "pyttsx3", "fake", "none"], default="espeak")
    p.add_argument("--audio-device", default=None, help="ALSA device for aplay (default: the default card)")
    p.add_argument("--speech-cache", type=Path, default=None, help="where synthesised phrases are cached")
    p.add_argument("--offline-after", type=float, default=30.0, help="seconds without broker before the offline banner")
    p.add_argument("--watchdog", type=float, default=30.0, help="exit with code 3 if the UI thread stalls this long (0: off)")
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG after --screenshot-after seconds, then exit")
    p.add_argument("--screenshot-after", type=float, default=3.0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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

    speaker = make_speaker(args.speaker, audio_device=args.audio_device, cache_dir=args.speech_cache)
    screen = CallScreen(
        args.broker, args.site, args.rooms, speaker=speaker, layout=args.layout, languages=args.languages,
        repeats=args.repeats, device_id=args.device_id, offline_after=args.offline_after,
        watchdog_timeout=args.watchdog or None, ui_call=kivy_ui_call, tick_interval=None,
    )
    CallScreenApp(screen, screenshot=args.screenshot, screenshot_after=args.screenshot_after).run()
    if speaker is not None:
        speaker.close()
    return 0
