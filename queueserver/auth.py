"""Bearer tokens per role: kiosk, display (read only), clinician (scoped to rooms), manager (reads statistics), admin.

Tokens are generated at the first start into ``<data-dir>/tokens.json`` (mode 0600, never in
the repository) and read from there on every later start. The file maps a token name to its
role, rooms and secret::

    {"kiosk": {"role": "kiosk", "token": "..."},
     "clinician:zhou": {"role": "clinician", "rooms": ["r1"], "token": "..."}, ...}

``clinician`` (no suffix) is the hospital file's clinician ``demo`` if there is one.

Tokens travel only in the ``Authorization`` header. A browser's EventSource cannot send
headers, so a live stream takes a *stream ticket* instead: ``issue_stream_ticket`` signs the
token's name and an expiry (HMAC over every secret in the book, so each HTTP worker that
read the same ``tokens.json`` accepts it, with no state shared), valid for a minute, and
useless for anything but opening a stream. An access or proxy log that records it records
something that has already expired.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from queueserver.errors import ForbiddenError, NotAuthenticated
from queueserver.hospital_file import Hospital

ROLES = ("kiosk", "display", "clinician", "manager", "admin")
STREAM_TICKET_TTL = 60.0  # seconds a stream ticket may be used to open a stream


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name, role and (clinicians) rooms."""

    name: str
    role: str
    rooms: frozenset[str] | None = None  # None: every room

    def may_use_room(self, room: str) -> bool:
        return self.role == "admin" or self.rooms is None or room in self.rooms


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (None: no bearer token in it)."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


def principal_with_role(tokens: "TokenBook", authorization: str | None, query: Mapping[str, str],
                        roles: Collection[str], what: str) -> Principal:
    """The caller of an ``Authorization`` header if its role is one of ``roles`` (``what`` it asked to do).

    Raises ``NotAuthenticated`` (no bearer token, an unknown one, a token sent in the address's
    ``query`` instead) or ``ForbiddenError`` (a role that may not).
    """
    token = bearer_token(authorization)
    if not token:
        if "access_token" in query:  # refused: addresses end up in access and proxy logs
            raise NotAuthenticated("Tokens are not accepted in the address (they end up in logs): send "
                                   "'Authorization: Bearer <token>'.")
        raise NotAuthenticated("This needs a bearer token: send 'Authorization: Bearer <token>'.")
    who = tokens.lookup(token)
    if who is None:
        raise NotAuthenticated("The token is not valid for this server.")
    if who.role not in roles:
        first = next(iter(roles))
        raise ForbiddenError(f"A {who.role} token cannot {what}; use a{'n' if first[0] in 'aeiou' else ''} "
                             f"{first} token.")
    return who


class TokenBook:
    """The tokens of one server, looked up in constant time per request."""

    def __init__(self, entries: dict[str, dict]) -> None:
        self.entries = entries
        self._by_secret = {
            e["token"]: Principal(name, e["role"], frozenset(e["rooms"]) if e.get("rooms") is not None else None)
            for name, e in entries.items()
        }

    def lookup(self, token: str) -> Principal | None:
        return self._by_secret.get(token)

    def _ticket_mac(self, body: bytes) -> str:
        key = hashlib.sha256("\n".join(sorted(self._by_secret)).encode()).digest()
        return base64.urlsafe_b64encode(hmac.new(key, body, hashlib.sha256).digest()[:18]).decode()

    def issue_stream_ticket(self, who: Principal, *, ttl: float = STREAM_TICKET_TTL,
                            now: float | None = None) -> str:
        """A short-lived ticket that opens a live stream as ``who`` (``?ticket=``, never the token)."""
        expires = int((time.time() if now is None else now) + ttl)
        body = base64.urlsafe_b64encode(f"{who.name}|{expires}".encode()).decode().rstrip("=")
        return f"{body}.{self._ticket_mac(body.encode())}"

    def stream_principal(self, ticket: str, *, now: float | None = None) -> Principal | None:
        """Who a stream ticket was issued to, or None if it is forged, expired or its token is gone."""
        body, _, mac = ticket.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._ticket_mac(body.encode()).encode()):
            return None
        try:
            name, _, expires = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().rpartition("|")
            if int(expires) < (time.time() if now is None else now):
                return None
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
            return None
        entry = self.entries.get(name)
        return self._by_secret.get(entry["token"]) if entry else None

    def tokens(self) -> dict[str, str]:
        """Token name -> secret (what the test fixture and the demo hand to devices)."""
        return {name: e["token"] for name, e in self.entries.items()}

    @classmethod
    def load_or_create(cls, data_dir: Path, hospital: Hospital) -> "TokenBook":
        """Read ``tokens.json``; create it (0600) on first start; add tokens for clinicians added since."""
        path = Path(data_dir) / "tokens.json"
        entries: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
        changed = not path.exists()
        wanted: dict[str, dict] = {"kiosk": {"role": "kiosk"}, "display": {"role": "display"},
                                   "admin": {"role": "admin"}, "manager": {"role": "manager"}}
        for clin in hospital.clinicians:
            wanted[f"clinician:{clin.id}"] = {"role": "clinician", "rooms": list(clin.rooms)}
        if any(c.id == "demo" for c in hospital.clinicians):
            wanted["clinician"] = dict(wanted["clinician:demo"])
        for name, spec in wanted.items():
            if name not in entries:
                entries[name] = {**spec, "token": secrets.token_urlsafe(24)}
                changed = True
            elif entries[name].get("rooms") != spec.get("rooms") and spec["role"] == "clinician":
                entries[name]["rooms"] = spec["rooms"]  # the hospital file is the truth for room scopes
                changed = True
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        os.chmod(path, 0o600)
        return cls(entries)
