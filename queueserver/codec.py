"""Plain-data encoding of the queue's results, arguments and errors (JSON; nothing in it can run code).

Used where a result must outlive the call or cross a process: the idempotency table keeps a
write's first result to answer its retries, and the channel between the HTTP workers and the
queue core (``queueserver.core_link``) carries calls and results. JSON's own types pass as
they are; everything else is tagged ``{"$": kind, "v": value}`` and only the kinds listed
here are rebuilt, through their validating constructors (pydantic's ``model_validate``, a
frozen dataclass): a forged message can at worst be refused, never executed.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from protocol import errors as protocol_errors
from protocol.api import CallOut, TicketOut
from protocol.payloads import Alert, RoomState
from queueserver import errors as queue_errors
from queueserver.hospital_file import Hospital
from queueserver.results import DayClosed, Issued, QueueEntry

_MODELS: dict[str, type[BaseModel]] = {cls.__name__: cls for cls in (TicketOut, CallOut, RoomState, Alert, Hospital)}
_DATACLASSES: dict[str, type] = {cls.__name__: cls for cls in (Issued, DayClosed, QueueEntry)}
# Errors that cross as themselves; anything else arrives as a RuntimeError with its text.
_ERRORS: dict[str, type[BaseException]] = {
    **{name: getattr(protocol_errors, name) for name in ("ClinicflowError", "NotFoundError", "ConflictError")},
    **{name: getattr(queue_errors, name) for name in queue_errors.__all__},
    "PermissionError": PermissionError, "ValueError": ValueError, "LookupError": LookupError,
    "ConnectionError": ConnectionError, "TimeoutError": TimeoutError,
}


class DecodeError(ValueError):
    """Data that is not an encoding of a known kind (refused, never guessed)."""


def to_plain(value: Any) -> Any:
    """``value`` as JSON-able data (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, BaseModel):
        name = type(value).__name__
        if name not in _MODELS:
            raise TypeError(f"{name} is not a kind the codec carries")
        return {"$": name, "v": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _DATACLASSES:
            raise TypeError(f"{name} is not a kind the codec carries")
        return {"$": name, "v": {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [to_plain(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$": "frozenset", "v": sorted(to_plain(v) for v in value)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can be carried")
        plain = {k: to_plain(v) for k, v in value.items()}
        return {"$": "dict", "v": plain} if "$" in plain else plain
    if isinstance(value, BaseException):
        return {"$": "error", "v": {"type": type(value).__name__, "message": str(value)}}
    raise TypeError(f"{type(value).__name__} is not a kind the codec carries")


def from_plain(data: Any) -> Any:
    """The value ``to_plain`` encoded; ``DecodeError`` for anything else."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [from_plain(v) for v in data]
    if not isinstance(data, dict):
        raise DecodeError(f"unexpected {type(data).__name__}")
    kind = data.get("$")
    if kind is None:
        return {k: from_plain(v) for k, v in data.items()}
    value = data.get("v")
    decode = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decode is None:
        raise DecodeError(f"unknown kind {kind!r}")
    try:
        return decode(value)
    except DecodeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        raise DecodeError(f"bad {kind}: {exc}") from None


def _dataclass(cls: type) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise DecodeError(f"bad {cls.__name__}")
        return cls(**{k: from_plain(v) for k, v in value.items()})
    return decode


def _error(value: Any) -> BaseException:
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        raise DecodeError("bad error")
    cls = _ERRORS.get(value.get("type"))  # type: ignore[arg-type]
    if cls is None:
        return RuntimeError(f"{value.get('type')}: {value['message']}")
    return cls(value["message"])


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError("bad sequence")
    return [from_plain(v) for v in value]


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError("bad dict")
    return {k: from_plain(v) for k, v in value.items()}


_DECODERS: dict[str, Callable[[Any], Any]] = {
    **{name: cls.model_validate for name, cls in _MODELS.items()},
    **{name: _dataclass(cls) for name, cls in _DATACLASSES.items()},
    "tuple": lambda v: tuple(_list(v)),
    "frozenset": lambda v: frozenset(_list(v)),
    "dict": _dict,
    "error": _error,
}


def dumps(value: Any) -> str:
    """``value`` as a JSON text (compact)."""
    return json.dumps(to_plain(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """The value of a ``dumps`` text; ``DecodeError`` for malformed JSON or unknown kinds."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    return from_plain(data)
