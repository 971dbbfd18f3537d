"""MQTT topic grammar, v1: every topic string is built and parsed here and nowhere else.

    clinicflow/v1/{site}/rooms/{room}/state           retained, QoS 1: RoomState snapshot
    clinicflow/v1/{site}/calls                        QoS 1, not retained: CallEvent
    clinicflow/v1/{site}/alerts                       QoS 1, not retained: Alert
    clinicflow/v1/{site}/notice                       retained, QoS 1: Notice (scrolling line on screens)
    clinicflow/v1/{site}/server/availability          retained "online"/"offline" (birth and will)
    clinicflow/v1/{site}/devices/{device}/availability  retained "online"/"offline"
    clinicflow/v1/{site}/devices/{device}/status      retained DeviceStatus
    clinicflow/v1/{site}/devices/{device}/config      retained device config (JSON)
    clinicflow/v1/{site}/devices/{device}/command     QoS 1: command with a transaction id
    clinicflow/v1/{site}/devices/{device}/response    QoS 1: answer to a command
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROOT = "clinicflow/v1"
ONLINE = "online"
OFFLINE = "offline"

# Site, room and device identifiers become topic levels: keep them to characters
# that can never be an MQTT wildcard or separator.
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DeviceLeaf = Literal["availability", "status", "config", "command", "response"]
DEVICE_LEAVES: tuple[str, ...] = ("availability", "status", "config", "command", "response")


def validate_id(value: str, what: str = "identifier") -> str:
    """Return value if it is a valid topic level (letters, digits, '_', '.', '-'), else raise ValueError."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return value


def room_state(site: str, room: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/rooms/{validate_id(room, 'room')}/state"


def all_room_states(site: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/rooms/+/state"


def calls(site: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/calls"


def alerts(site: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/alerts"


def notice(site: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/notice"


def server_availability(site: str) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/server/availability"


def device(site: str, device_id: str, leaf: DeviceLeaf) -> str:
    if leaf not in DEVICE_LEAVES:
        raise ValueError(f"unknown device topic leaf {leaf!r}")
    return f"{ROOT}/{validate_id(site, 'site')}/devices/{validate_id(device_id, 'device')}/{leaf}"


def all_devices(site: str, leaf: DeviceLeaf) -> str:
    return f"{ROOT}/{validate_id(site, 'site')}/devices/+/{leaf}"


@dataclass(frozen=True)
class TopicMatch:
    """What a concrete topic names: its kind, site, and the room or device when it has one."""

    kind: str  # "room_state", "calls", "alerts", "notice", "server_availability", "device_<leaf>"
    site: str
    room: str | None = None
    device: str | None = None


def parse(topic: str) -> TopicMatch | None:
    """Match a concrete topic against the v1 grammar; None for anything that is not ours."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT or not _ID.match(parts[2]):
        return None
    site, rest = parts[2], parts[3:]
    if rest == ["calls"]:
        return TopicMatch("calls", site)
    if rest == ["alerts"]:
        return TopicMatch("alerts", site)
    if rest == ["notice"]:
        return TopicMatch("notice", site)
    if rest == ["server", "availability"]:
        return TopicMatch("server_availability", site)
    if len(rest) == 3 and rest[0] == "rooms" and rest[2] == "state" and _ID.match(rest[1]):
        return TopicMatch("room_state", site, room=rest[1])
    if len(rest) == 3 and rest[0] == "devices" and rest[2] in DEVICE_LEAVES and _ID.match(rest[1]):
        return TopicMatch(f"device_{rest[2]}", site, device=rest[1])
    return None
