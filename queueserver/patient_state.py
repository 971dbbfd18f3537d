"""The patient API's state in the store: kiosk patient sessions and idempotency answers.

Kept in the queue store (``qs_patient_sessions``, ``qs_api_answers``) rather than in a
process's memory, so a server restart, another HTTP worker process or another replica
continues a kiosk's session and answers a retry with the first answer.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from queueserver.store import Store
from queueserver.store_help import api_answers, patient_sessions

M = TypeVar("M", bound=BaseModel)
ANSWERS_KEPT = timedelta(days=2)  # a retry comes within minutes; older answers are dropped


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class StoredSessions:
    """Patient sessions: random id -> patient id, sliding expiry of ``ttl`` seconds without use."""

    def __init__(self, store: Store, ttl: float, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl)
        self.clock = clock

    def open(self, patient_id: str) -> str:
        sid = secrets.token_urlsafe(24)
        now = self.clock()
        with self.store.tx() as tx:
            tx.conn.execute(delete(patient_sessions).where(patient_sessions.c.expires_at <= now))
            tx.conn.execute(patient_sessions.insert().values(session_hash=_hash(sid), patient_id=patient_id,
                                                             expires_at=now + self.ttl))
        return sid

    def patient_id(self, sid: str | None) -> str | None:
        """The session's patient, or None when unknown or expired; use extends it."""
        if not sid:
            return None
        now = self.clock()
        key = _hash(sid)
        with self.store.read() as conn:
            row = conn.execute(select(patient_sessions).where(patient_sessions.c.session_hash == key)).mappings().first()
        if row is None or row["expires_at"] <= now:
            return None
        if row["expires_at"] - now < self.ttl / 2:  # extend at most every half ttl: one write, not one per call
            with self.store.tx() as tx:
                tx.conn.execute(update(patient_sessions).where(patient_sessions.c.session_hash == key)
                                .values(expires_at=now + self.ttl))
        return row["patient_id"]

    def close(self, sid: str) -> None:
        with self.store.tx() as tx:
            tx.conn.execute(delete(patient_sessions).where(patient_sessions.c.session_hash == _hash(sid)))


class StoredAnswers:
    """Idempotency answers: the first answer to a key, given again to every retry."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self.clock = clock

    def get(self, key: str, model: type[M]) -> M | None:
        with self.store.read() as conn:
            body = conn.execute(select(api_answers.c.body).where(api_answers.c.key == key)).scalar()
        return None if body is None else model.model_validate_json(body)

    def remember(self, key: str | None, model: type[M], compute: Callable[[], M]) -> M:
        """``compute()`` once per key (errors are not remembered: a retry tries again)."""
        if not key:
            return compute()
        found = self.get(key, model)
        if found is not None:
            return found
        result = compute()
        now = self.clock()
        try:
            with self.store.tx() as tx:
                tx.conn.execute(delete(api_answers).where(api_answers.c.created_at < now - ANSWERS_KEPT))
                tx.conn.execute(api_answers.insert().values(key=key, body=result.model_dump_json(), created_at=now))
        except IntegrityError:  # a concurrent retry answered first: its answer is the one
            return self.get(key, model) or result
        return result
