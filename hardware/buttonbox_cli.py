"""``clinicflow buttonbox``: run a clinician's call-button box at a room (the composition root).

    clinicflow buttonbox --config /etc/clinicflow/device.toml
    CLINICFLOW_CONFIG=/etc/clinicflow/device.toml clinicflow buttonbox   # the same, as the systemd unit runs it
    clinicflow buttonbox --server http://127.0.0.1:8000 --room r1 --token-env CLINICFLOW_TOKEN \\
                         --pins call_next=17,recall=27,no_show=22,pause=23,busy_led=24,buzzer=25
    clinicflow buttonbox ... --pin-factory mock --press call_next   # one press without hardware, then exit

With ``--config`` the room, server, token, pins and pin factory come from the device file,
and the box reports its status over MQTT through a ``DeviceAgent``. It runs until
SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from hardware.buttonbox import ACTIONS, ButtonBoxPins, ButtonResult, CallButtonBox, RoomApiClient
from hardware.pins import FACTORIES, make_pin_factory

log = logging.getLogger("clinicflow.buttonbox")
HELP_CHECK_S = 10.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clinicflow buttonbox", description="Run a clinician's call-button box (GPIO).")
    p.add_argument("--config", default=os.environ.get("CLINICFLOW_CONFIG") or None,
                   help="device file (TOML); gives room, server, token, pins and broker (default $CLINICFLOW_CONFIG)")
    p.add_argument("--server", help="queue server URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--room", help="room id this box calls for, e.g. r1")
    p.add_argument("--token-env", default="CLINICFLOW_TOKEN", help="environment variable holding the clinician token")
    p.add_argument("--token-file", help="file holding the clinician token")
    p.add_argument("--pins", default="", help="e.g. call_next=17,recall=27,no_show=22,pause=23,busy_led=24,buzzer=25")
    p.add_argument("--pin-factory", choices=sorted(FACTORIES), help="gpiozero pin factory (default: gpiozero's own)")
    p.add_argument("--settle-ms", type=float, default=30.0, help="debounce: how long a press must hold (ms)")
    p.add_argument("--press", choices=ACTIONS, action="append", default=[],
                   help="press this button once (repeatable), print the result and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Room, server, token, pins, pin factory and an optional agent factory, from the file or the flags."""
    if args.config:
        from config.loader import api_token, load_config

        config = load_config(args.config)
        if not config.settings.rooms:
            raise ValueError("the device file names no room: set rooms = [\"r1\"] under [settings]")
        buttons = config.hardware.buttons
        return {
            "server": config.server.url, "room": config.settings.rooms[0], "token": api_token(config) or "",
            "pins": ButtonBoxPins.from_config(buttons), "pin_factory": args.pin_factory or buttons.pin_factory,
            "config": config,
        }
    if not args.server or not args.room:
        raise ValueError("give --config FILE, or --server URL and --room ROOM")
    token = ""
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    elif args.token_env:
        token = os.environ.get(args.token_env, "")
    if not token:
        raise ValueError(f"no clinician token: set {args.token_env} or give --token-file")
    return {"server": args.server, "room": args.room, "token": token,
            "pins": ButtonBoxPins.parse(args.pins) if args.pins else ButtonBoxPins(),
            "pin_factory": args.pin_factory, "config": None}


def _start_agent(config: Any, box: CallButtonBox, last: dict[str, ButtonResult]) -> Any:
    """MQTT status for a configured box; None when the broker or the agent is not available."""
    try:
        from clinicflow.agent import DeviceAgent
        from clinicflow.mqtt import PahoMessageBus
        from config.broker_settings import broker_settings
        from protocol import topics

        bus = PahoMessageBus.from_settings(broker_settings(config), client_id=config.device.id,
                                           availability_topic=topics.device(config.device.site, config.device.id, "availability"))
        agent = DeviceAgent(bus, site=config.device.site, device_id=config.device.id, role="button_box",
                            settings=config.settings_dict() if hasattr(config, "settings_dict") else None)
        agent.add_check("server", lambda: last["result"].ok if "result" in last else True)
        agent.add_detail("last_action", lambda: last["result"].action if "result" in last else None)
        agent.add_detail("room_paused", lambda: box.paused)
        bus.start()
        agent.start()
        return (bus, agent)
    except Exception as exc:  # a box without its broker still calls patients
        log.warning("device status over MQTT is off: %s", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from clinicflow.logs import setup_logging

    setup_logging(args.verbose)
    try:
        cfg = _settings(args)
        factory = make_pin_factory(cfg["pin_factory"])
    except Exception as exc:
        print(f"clinicflow buttonbox: {exc}", file=sys.stderr)
        return 2
    client = RoomApiClient(cfg["server"], room=cfg["room"], token=cfg["token"])
    results: "list[ButtonResult]" = []
    done = threading.Condition()
    last: dict[str, ButtonResult] = {}

    def on_result(result: ButtonResult) -> None:
        with done:
            last["result"] = result
            results.append(result)
            done.notify_all()
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "%s: %s", result.action, "ok" if result.ok else result.detail)

    box = CallButtonBox(client=client, pins=cfg["pins"], pin_factory=factory,
                        settle_s=args.settle_ms / 1000, on_result=on_result)
    try:
        if args.press:
            for n, action in enumerate(args.press, start=1):
                box.press(action)
                with done:
                    done.wait_for(lambda: len(results) >= n, timeout=client_timeout(client) + 5)
            for result in results:
                print(f"{result.action}: {'ok' if result.ok else 'FAILED: ' + result.detail}")
            return 0 if len(results) == len(args.press) and all(r.ok for r in results) else 1
        box.sync_pause_state()
        agent = _start_agent(cfg["config"], box, last) if cfg["config"] is not None else None
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.info("button box for room %s ready (server %s)", cfg["room"], cfg["server"])
        print(f"button box for room {cfg['room']} ready", flush=True)
        while not stop.wait(HELP_CHECK_S):  # an escalated help request sounds the buzzer
            box.check_help()
        if agent is not None:
            agent[1].stop()
            agent[0].stop()
        return 0
    finally:
        box.close()
        client.close()


def client_timeout(client: RoomApiClient) -> float:
    timeout = client._http.timeout
    return float(timeout.read or 5.0)


if __name__ == "__main__":
    sys.exit(main())
