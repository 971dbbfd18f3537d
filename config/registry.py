"""The server's list of provisioned devices: ``devices.json`` in the data directory.

One record per device: identity, role, site, rooms, and the SHA-256 of its API token
(never the token itself). ``clinicflow devices add`` writes it; ``clinicflow
broker-config`` turns it into the Mosquitto ACL; the queue server may read it to
accept device tokens (``token_scope``).

Writes are atomic (temp file + rename), so a power cut leaves the old or the new
file, never half of one.
"""
from __future__ import annotations

import grp
import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from config.schema import Ident, Role
from protocol.errors import ConflictError, NotFoundError

# The same data directory as `clinicflow server --data-dir` (and the same environment variable).
DATA_ENV = "CLINICFLOW_DATA_DIR"
DEFAULT_DATA_DIR = Path("clinicflow-data")
SERVER_MQTT_USER = "queueserver"
# The API role each device role's token carries (protocol/api.py: kiosk, clinician, display, admin).
API_ROLE = {"kiosk": "kiosk", "door_screen": "display", "hall_board": "display", "button_box": "clinician"}


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The server's data directory: the argument, else ``$CLINICFLOW_DATA_DIR``, else ``./clinicflow-data`` (as the server)."""
    return Path(path or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeviceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Ident
    role: Role
    site: Ident
    rooms: tuple[Ident, ...] = ()
    name: str = ""
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def api_role(self) -> str:
        return API_ROLE[self.role]


def write_atomically(path: Path, text: str, mode: int = 0o644, *, group: str | None = None) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a torn one.

    The file is created with ``mode`` (never wider for a moment). Run as root, it gets the owner of
    the directory it is in (so ``tokens.json`` written by ``sudo clinicflow devices add`` stays
    readable by the queue server's own user), and ``group`` when given (``mosquitto``: files the
    broker reads after it dropped its privileges). A group that does not exist is left alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode & 0o600)  # owner-only until owner and group are right
        _hand_over(fd, path.parent, group)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def group_id(name: str | None) -> int | None:
    """The id of group ``name``, or None when there is no such group (or no name)."""
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _hand_over(fd: int, directory: Path, group: str | None) -> None:
    uid, gid = -1, group_id(group) if group else -1
    if os.geteuid() == 0:
        owner = directory.stat()
        uid = owner.st_uid
        if gid in (-1, None):
            gid = owner.st_gid
    if gid is None:
        gid = -1
    if uid == -1 and gid == -1:
        return
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:  # not root and not in that group: the broker then runs as this user anyway
        pass


class DeviceRegistry:
    """Provisioned devices, kept in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_data_dir(cls, directory: str | os.PathLike[str] | None = None) -> "DeviceRegistry":
        return cls(data_dir(directory) / "devices.json")

    def all(self) -> list[DeviceRecord]:
        if not self.path.exists():
            return []
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        return [DeviceRecord.model_validate(r) for r in raw.get("devices", [])]

    def get(self, device_id: str) -> DeviceRecord:
        for record in self.all():
            if record.id == device_id:
                return record
        raise NotFoundError(f"no device {device_id!r} in {self.path}")

    def add(self, record: DeviceRecord, *, replace: bool = False) -> None:
        records = self.all()
        if any(r.id == record.id for r in records) and not replace:
            raise ConflictError(f"device {record.id!r} already exists; use --replace to issue it new credentials")
        records = [r for r in records if r.id != record.id] + [record]
        self._save(records)

    def remove(self, device_id: str) -> DeviceRecord:
        record = self.get(device_id)
        self._save([r for r in self.all() if r.id != device_id])
        return record

    def token_scope(self, token: str) -> DeviceRecord | None:
        """The device a bearer token belongs to, or None (for the queue server's auth)."""
        digest = token_hash(token)
        return next((r for r in self.all() if r.token_sha256 == digest), None)

    def grant_api_token(self, record: DeviceRecord, token: str) -> None:
        """Add the device's token to the queue server's ``tokens.json`` (its ``TokenBook``) as ``device:<id>``.

        The server reads the file at start: restart it (or wait for the next start) before the
        device's first API call. The file holds secrets and stays mode 0600.
        """
        path = self.path.parent / "tokens.json"
        entries = json.loads(path.read_text()) if path.exists() else {}
        entry: dict[str, object] = {"role": record.api_role, "token": token}
        if record.api_role == "clinician":
            entry["rooms"] = list(record.rooms)
        entries[f"device:{record.id}"] = entry
        write_atomically(path, json.dumps(entries, indent=2) + "\n", mode=0o600)

    def revoke_api_token(self, device_id: str) -> None:
        path = self.path.parent / "tokens.json"
        if path.exists():
            entries = json.loads(path.read_text())
            if entries.pop(f"device:{device_id}", None) is not None:
                write_atomically(path, json.dumps(entries, indent=2) + "\n", mode=0o600)

    def _save(self, records: list[DeviceRecord]) -> None:
        data = {"v": 1, "devices": [r.model_dump(mode="json") for r in sorted(records, key=lambda r: r.id)]}
        write_atomically(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=0o600)
