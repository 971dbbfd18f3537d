"""``clinicflow devices``: give a new device its identity on the server.

    clinicflow devices add --role display --rooms 3,4 --name hall-2
    clinicflow devices list
    clinicflow devices remove hall-2

``add`` records the device in ``<data dir>/devices.json`` (with the SHA-256 of a new API
token), gives it MQTT credentials in the broker's password file (``mosquitto_passwd``),
regenerates the broker ACL, and writes a provisioning bundle: ``<id>.cfbundle`` plus a
QR code PNG of the same, to carry to the device and run ``clinicflow provision`` there.

``--role display`` means a door screen for one room and a hall board for several.
Bare room numbers are room ids with an ``r`` in front (``3,4`` -> ``r3, r4``).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from config.broker_files import MosquittoPasswdError, MosquittoPasswords, reserved_name_problem, write_acl
from clinicflow.update import PUB_NAME
from config.bundle import CA_PATH, MQTT_PASSWORD_PATH, TOKEN_PATH, Bundle
from config.loader import parse_config
from config.registry import DeviceRecord, DeviceRegistry, data_dir, token_hash
from protocol import topics
from protocol.errors import ClinicflowError

ROLE_CHOICES = ("kiosk", "display", "door_screen", "hall_board", "button_box")
DEFAULT_PINS = {"call_next_pin": 17, "recall_pin": 27, "pause_pin": 22, "lamp_pin": 23}


def resolve_role(role: str, rooms: list[str]) -> str:
    """``display`` becomes a door screen for one room, a hall board for several."""
    if role == "display":
        return "door_screen" if len(rooms) == 1 else "hall_board"
    return role


def parse_rooms(text: str) -> list[str]:
    rooms = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        room = f"r{part}" if part.isdigit() else part
        rooms.append(topics.validate_id(room, "room"))
    return rooms


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_device_toml(tables: dict[str, dict[str, Any]]) -> str:
    lines = ["# Written by `clinicflow devices add`; secrets are in /etc/clinicflow/secrets/, never here."]
    for table, values in tables.items():
        lines += ["", f"[{table}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def device_tables(*, device_id: str, role: str, site: str, label: str, rooms: list[str], languages: list[str],
                  server_url: str, broker_url: str, has_ca: bool, printer_model: str | None,
                  usb_id: str | None) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {
        "device": {"id": device_id, "role": role, "site": site, "name": label or None},
        "server": {"url": server_url, "token_file": TOKEN_PATH},
        "broker": {"url": broker_url, "username": device_id, "password_file": MQTT_PASSWORD_PATH,
                   "ca_file": CA_PATH if has_ca else None},
        "settings": {"rooms": rooms, "languages": languages},
    }
    if role == "kiosk":
        tables["settings"]["modes"] = ["check_in"]
        if usb_id:
            vendor, product = (int(x, 16) for x in usb_id.split(":"))
            tables["hardware.printer"] = {"adapter": "escpos_usb", "model": printer_model or "", "usb_vendor": vendor,
                                          "usb_product": product}
        tables["hardware.scanner"] = {"adapter": "keyboard_wedge"}
    elif role in ("door_screen", "hall_board"):
        tables["hardware.speaker"] = {"adapter": "espeak"}
    elif role == "button_box":
        tables["hardware.buttons"] = {"adapter": "gpio", "pin_factory": "lgpio", **DEFAULT_PINS}
    return tables


def _endpoints(broker_dir: Path) -> dict[str, Any]:
    path = broker_dir / "endpoints.json"
    return json.loads(path.read_text()) if path.exists() else {}


def add(args: argparse.Namespace) -> int:
    data = data_dir(args.data_dir)
    broker_dir = Path(args.broker_dir) if args.broker_dir else data / "broker"
    rooms = parse_rooms(args.rooms or "")
    role = resolve_role(args.role, rooms)
    device_id = topics.validate_id(args.name, "device name")
    registry = DeviceRegistry.in_data_dir(data)
    known = {r.id for r in registry.all()}
    problem = reserved_name_problem(device_id)
    if problem is None and device_id not in known and device_id in MosquittoPasswords(broker_dir / "passwd").users():
        problem = f"{device_id!r} is already a broker user that is not a device (a campus bridge or the server)"
    if problem:
        print(f"devices: refused: {problem}. Fix: choose another --name, e.g. hall-2 or kiosk-1", file=sys.stderr)
        return 1
    if device_id in known and not args.replace:
        print(f"devices: {device_id} already exists; add --replace to issue it new credentials", file=sys.stderr)
        return 1

    endpoints = _endpoints(broker_dir)
    ca_file = broker_dir / "ca.crt"
    release_pub = broker_dir / PUB_NAME  # made by broker-config: the device verifies updates with it
    broker_url = args.broker_url or endpoints.get("broker_url") or "mqtt://localhost:1883"
    server_url = args.server_url or os.environ.get("CLINICFLOW_PUBLIC_URL") or f"http://{socket.getfqdn()}:8000"
    has_ca = ca_file.exists() and broker_url.startswith("mqtts://")
    toml_text = render_device_toml(device_tables(
        device_id=device_id, role=role, site=args.site, label=args.label, rooms=rooms,
        languages=[x.strip() for x in args.languages.split(",") if x.strip()], server_url=server_url,
        broker_url=broker_url, has_ca=has_ca, printer_model=args.printer_model, usb_id=args.usb_id))
    parse_config(toml_text, source=f"{device_id} config")  # never hand out a config the device would refuse

    mqtt_password = secrets.token_urlsafe(24)
    api_token = secrets.token_urlsafe(32)
    MosquittoPasswords(broker_dir / "passwd").set(device_id, mqtt_password)
    record = DeviceRecord(id=device_id, role=role, site=args.site, rooms=tuple(rooms), name=args.label,
                          token_sha256=token_hash(api_token))
    registry.add(record, replace=args.replace)
    registry.grant_api_token(record, api_token)
    write_acl(broker_dir / "acl", registry.all())

    bundle = Bundle(device_id=device_id, role=role, site=args.site, config_toml=toml_text, api_token=api_token,
                    mqtt_password=mqtt_password, ca_cert=ca_file.read_text() if has_ca else None,
                    release_key=release_pub.read_text() if release_pub.exists() else None)
    out = Path(args.out) if args.out else data / "bundles" / f"{device_id}.cfbundle"
    bundle.write(out)
    qr = Path(args.qr) if args.qr else out.with_suffix(".png")
    bundle.write_qr_png(qr)

    print(f"added {role} {device_id} at site {args.site}" + (f" for rooms {', '.join(rooms)}" if rooms else ""))
    print(f"  MQTT user {device_id} in {broker_dir / 'passwd'}; ACL {broker_dir / 'acl'} updated")
    print(f"  API token ({record.api_role}) added to {registry.path.parent / 'tokens.json'} as device:{device_id}"
          " (the queue server reads it at start: restart it)")
    print(f"  bundle: {out}  (QR code: {qr}); it holds secrets: delete it once the device is provisioned")
    print("  next: systemctl reload mosquitto   (re-reads passwords and ACL)")
    print(f"  on the device: clinicflow provision {out.name}")
    return 0


def list_devices(args: argparse.Namespace) -> int:
    records = DeviceRegistry.in_data_dir(args.data_dir).all()
    if not records:
        print("no devices yet: clinicflow devices add --role display --rooms 3,4 --name hall-2")
    for r in records:
        print(f"{r.id:20} {r.role:12} {r.site:10} {','.join(r.rooms) or '-':14} {r.name}")
    return 0


def remove(args: argparse.Namespace) -> int:
    data = data_dir(args.data_dir)
    broker_dir = Path(args.broker_dir) if args.broker_dir else data / "broker"
    registry = DeviceRegistry.in_data_dir(data)
    record = registry.remove(args.device)
    registry.revoke_api_token(record.id)
    MosquittoPasswords(broker_dir / "passwd").delete(record.id)
    write_acl(broker_dir / "acl", registry.all())
    print(f"removed {record.id}: its MQTT user and ACL entries stop working after `systemctl reload mosquitto`,"
          " its API token after the queue server restarts")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinicflow devices", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the queue server's --data-dir (default $CLINICFLOW_DATA_DIR or ./clinicflow-data)")
    parser.add_argument("--broker-dir", help="broker files from `clinicflow broker-config` (default <data dir>/broker)")
    sub = parser.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="create a device's identity, credentials and provisioning bundle")
    a.add_argument("--role", required=True, choices=ROLE_CHOICES)
    a.add_argument("--name", required=True, help="the device id, e.g. hall-2 (letters, digits, '-', '_', '.')")
    a.add_argument("--rooms", default="", help="rooms it shows or serves, e.g. 3,4 or r3,r4")
    a.add_argument("--site", default="demo", help="site id (default demo)")
    a.add_argument("--label", default="", help="where it hangs, for people: 'Surgery waiting area'")
    a.add_argument("--languages", default="zh,en", help="spoken and shown languages (default zh,en)")
    a.add_argument("--server-url", help="queue server URL the device uses (default $CLINICFLOW_PUBLIC_URL)")
    a.add_argument("--broker-url", help="broker URL the device uses (default from broker-config)")
    a.add_argument("--printer-model", help="kiosk ticket printer model, e.g. 'Epson TM-T20III'")
    a.add_argument("--usb-id", help="kiosk printer USB vendor:product in hex, e.g. 04b8:0e28")
    a.add_argument("--out", help="bundle file (default <data dir>/bundles/<id>.cfbundle)")
    a.add_argument("--qr", help="QR code PNG (default next to the bundle)")
    a.add_argument("--replace", action="store_true", help="re-issue credentials for an existing device")
    sub.add_parser("list", help="list provisioned devices")
    r = sub.add_parser("remove", help="revoke a device")
    r.add_argument("device")
    args = parser.parse_args(argv)
    try:
        return {"add": add, "list": list_devices, "remove": remove}[args.action](args)
    except (ClinicflowError, ValueError, MosquittoPasswdError) as exc:
        print(f"devices: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
