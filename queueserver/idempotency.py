"""``Writes``: every state change as one transaction, idempotent with a key.

``Writes.run(op, idem_key=..., fingerprint=...)`` runs ``op(tx, now) -> result`` in one
transaction. With a key, the result is stored (``queueserver.codec``) in the same
transaction as the change it protects, so after a crash either both are there or neither
is, and a retry with the same key gets the first result without running ``op`` again.
Reusing a key for a different request (another fingerprint) is ``IdempotencyKeyReused``.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, select

from protocol.api import CallOut, TicketOut
from protocol.payloads import RoomState
from queueserver import codec
from queueserver.context import QueueContext
from queueserver.errors import IdempotencyKeyReused
from queueserver.results import DayClosed, Issued
from queueserver.store import Tx, idempotency

T = TypeVar("T")

_Q_IDEMPOTENCY = select(idempotency).where(idempotency.c.key == bindparam("key"))
_I_IDEMPOTENCY = insert(idempotency)
STORED = 0  # status_code of rows written since results are stored as codec data (see _legacy)


def _legacy(status_code: int, body: Any) -> Any:
    """A result stored by an older server as its HTTP answer (kept two days: retries across an upgrade)."""
    if status_code == 201:
        return Issued(TicketOut.model_validate(body), created=True)
    if "call_id" in body:
        return CallOut.model_validate(body)
    if "ticket_id" in body:
        return TicketOut.model_validate(body)
    if "seq" in body:
        return RoomState.model_validate(body)
    return DayClosed(**body)


class Writes:
    """Runs state changes (see the module docstring)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx

    def run(self, op: Callable[[Tx, datetime], T], *, idem_key: str | None = None, fingerprint: str = "") -> T:
        """``op(tx, now)`` in one transaction; with a key, a retry gets the first result.

        No retry loop is needed for concurrent changes: writes are one at a time (the store's writer
        lock, across replicas on PostgreSQL), so a replica sees the other's committed key or ticket.
        """
        ctx = self.ctx
        ctx.local.bumped = {}
        try:
            return self._once(op, idem_key, fingerprint)
        finally:
            ctx.local.bumped = None

    def _once(self, op: Callable[[Tx, datetime], T], idem_key: str | None, fingerprint: str) -> T:
        ctx = self.ctx
        with ctx.store.tx() as tx:
            now = ctx.clock()
            if idem_key:
                row = ctx.sql(tx.conn, _Q_IDEMPOTENCY, {"key": idem_key}).first()
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
                    if row["status_code"] != STORED:
                        return _legacy(row["status_code"], json.loads(row["body"]))  # type: ignore[no-any-return]
                    return codec.loads(row["body"])  # type: ignore[no-any-return]
            result = op(tx, now)
            if idem_key:
                ctx.sql(tx.conn, _I_IDEMPOTENCY, dict(key=idem_key, fingerprint=fingerprint, status_code=STORED,
                                                      body=codec.dumps(result), created_at=now))
        return result
