"""Mosquitto's password file and ACL file, generated from the device registry.

Passwords are hashed by Debian's own ``mosquitto_passwd`` (PBKDF2-SHA512), so the
file is exactly what the installed broker expects. The ACL gives each device the
least it needs (see ``render_acl``); Mosquitto denies everything an ACL does not grant.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from config.registry import SERVER_MQTT_USER, DeviceRecord, write_atomically
from protocol import topics
from protocol.errors import DeviceError


class MosquittoPasswdError(DeviceError):
    """``mosquitto_passwd`` is missing or refused the change."""


BROKER_GROUP = "mosquitto"
"""Debian's Mosquitto starts as root and drops to this user and group before it reads its files."""


def write_broker_file(path: Path, text: str, *, secret: bool) -> None:
    """A file Mosquitto reads after dropping to user ``mosquitto`` (also on every reload).

    Secrets (password file, server key, bridge config) are 0640 root:mosquitto from creation;
    the rest 0644. Replaced atomically, so a reload never finds it missing or unreadable.
    """
    write_atomically(path, text, mode=0o640 if secret else 0o644, group=BROKER_GROUP)


class MosquittoPasswords:
    """A Mosquitto password file; each password hashed by Debian's ``mosquitto_passwd`` (PBKDF2-SHA512).

    ``mosquitto_passwd`` never edits the live file: it hashes a one-line scratch file (``-U``, so no
    password is ever on a command line), and the new file replaces the old one atomically with the
    broker's group and mode 0640. A reload at any moment reads a complete, readable file.
    """

    def __init__(self, path: Path, *, binary: str | None = None) -> None:
        self.path = Path(path)
        self.binary = binary or shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text().splitlines() if ":" in line]

    def users(self) -> set[str]:
        return {line.split(":", 1)[0] for line in self._lines()}

    def set(self, user: str, password: str) -> None:
        """Add or change ``user``'s password."""
        topics.validate_id(user, "MQTT user")
        if not Path(self.binary).exists():
            raise MosquittoPasswdError(f"{self.binary} not found; install Debian's mosquitto package")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.path.parent, prefix=".passwd-") as scratch:
            plain = Path(scratch) / "one"
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{user}:{password}\n")
            done = subprocess.run([self.binary, "-U", str(plain)], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise MosquittoPasswdError(f"mosquitto_passwd failed: {(done.stderr or done.stdout).strip()}")
            hashed = plain.read_text().strip()
        if not hashed.startswith(f"{user}:$"):
            raise MosquittoPasswdError("mosquitto_passwd -U did not hash the password")
        self._save([line for line in self._lines() if not line.startswith(f"{user}:")] + [hashed])

    def refresh(self) -> None:
        """Write the file again as it is, with the broker's group and mode (files from older versions were 0600)."""
        if self.path.exists():
            self._save(self._lines())

    def delete(self, user: str) -> None:
        if user in self.users():
            self._save([line for line in self._lines() if not line.startswith(f"{user}:")])

    def _save(self, lines: list[str]) -> None:
        write_broker_file(self.path, "".join(f"{line}\n" for line in lines), secret=True)


# Broker users (and, with use_username_as_clientid, client ids) the system itself uses: the queue
# server, campus bridges (campus-<name>, bridge-<name>) and the server's own client ids (clinicflow-...).
RESERVED_NAMES = (SERVER_MQTT_USER,)
RESERVED_PREFIXES = (SERVER_MQTT_USER, "campus-", "bridge-", "clinicflow")


def reserved_name_problem(name: str) -> str | None:
    """Why ``name`` may not be a device's broker user, or None when it may."""
    lowered = name.lower()
    if lowered in RESERVED_NAMES:
        return f"{name!r} is the queue server's own broker user"
    for prefix in RESERVED_PREFIXES:
        if lowered.startswith(prefix):
            return (f"{name!r} starts with {prefix!r}, which is kept for the system's own broker users "
                    "(queue server, campus bridges, server client ids)")
    return None


def device_grants(record: DeviceRecord) -> list[tuple[str, str]]:
    """(access, topic) pairs for one device: read what its role shows, write only its own status subtree."""
    site, me = record.site, record.id
    grants: list[tuple[str, str]] = [
        ("read", topics.server_availability(site)),
        ("read", topics.notice(site)),
        ("read", topics.device(site, me, "config")),
        ("read", topics.device(site, me, "command")),
        ("write", topics.device(site, me, "availability")),
        ("write", topics.device(site, me, "status")),
        ("write", topics.device(site, me, "response")),
    ]
    if record.role in ("door_screen", "hall_board"):
        grants += [("read", topics.all_room_states(site)), ("read", topics.calls(site))]
    elif record.role == "kiosk":
        grants += [("read", topics.all_room_states(site))]  # waiting times; never calls, never writes them
    elif record.role == "button_box":
        grants += [("read", topics.room_state(site, room)) for room in record.rooms]
    return grants


def campus_user(name: str) -> str:
    """The MQTT user a campus broker's bridge logs in to the central broker with."""
    return f"campus-{topics.validate_id(name, 'campus name')}"


def load_campuses(broker_dir: Path) -> dict[str, str]:
    """Campus bridges allowed on this (central) broker: name -> site, from ``campuses.json``."""
    path = broker_dir / "campuses.json"
    return json.loads(path.read_text()) if path.exists() else {}


def render_acl(records: Iterable[DeviceRecord], *, server_users: Iterable[str] = (SERVER_MQTT_USER,),
               campuses: dict[str, str] | None = None) -> str:
    """The ACL file text. Anything not granted here is denied (and anonymous clients are refused outright)."""
    lines = [
        "# Generated by `clinicflow broker-config` / `clinicflow devices add`: edit the registry, not this file.",
        "# Mosquitto denies every topic not granted below.",
        "",
    ]
    for user in server_users:
        lines += ["# the queue server: publishes room states, calls, notices, configs and commands",
                  f"user {user}", f"topic readwrite {topics.ROOT}/#", ""]
    for name, site in sorted((campuses or {}).items()):
        lines += [f"# the bridge from campus {name}: carries site {site} both ways (config/bridge.py)",
                  f"user {campus_user(name)}", f"topic readwrite {topics.ROOT}/{topics.validate_id(site, 'site')}/#", ""]
    for record in sorted(records, key=lambda r: r.id):
        lines.append(f"# {record.role} {record.id}" + (f" ({record.name})" if record.name else ""))
        lines.append(f"user {record.id}")
        lines += [f"topic {access} {topic}" for access, topic in device_grants(record)]
        lines.append("")
    return "\n".join(lines)


def write_acl(path: Path, records: Iterable[DeviceRecord], *, server_users: Iterable[str] = (SERVER_MQTT_USER,)) -> bool:
    """Write the ACL if it changed; True when it did (Mosquitto then needs a SIGHUP to re-read it)."""
    text = render_acl(records, server_users=server_users, campuses=load_campuses(path.parent))
    if path.exists() and path.read_text() == text:
        return False
    write_broker_file(path, text, secret=True)  # it names every device: not for other local users
    return True
