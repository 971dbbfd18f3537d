"""What kiosks report about their sessions: privacy-safe (no patient, no ticket, no card, no amount).

A session ends either done (the check-in, registration, payment or report print succeeded) or
abandoned (the patient walked away, the idle timer cleared the screen, or they pressed home): the
kiosk sends the kind, the outcome, the screen it ended on and the seconds it took. The event id
is the kiosk's, so a report the kiosk retries is stored once.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql, sqlite

from queueserver.store import Store
from queueserver.dashboard.tables import kiosk_events

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class KioskEvent(BaseModel):
    """One finished or abandoned kiosk session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Ident
    kiosk: Ident
    kind: Literal["check_in", "registration", "payment", "report"]
    outcome: Literal["done", "abandoned"]
    screen: Annotated[str, Field(pattern=r"^[a-z0-9_]{0,40}$")] = ""
    seconds: float = Field(ge=0, le=3600, strict=True)  # strict: true/false is not a duration


def record_kiosk_event(store: Store, event: KioskEvent, *, now: datetime, day: str) -> bool:
    """Store the event (False: this event id was stored before)."""
    dialect = sqlite if store.is_sqlite else postgresql
    stmt = dialect.insert(kiosk_events).values(**event.model_dump(), day=day, at=now).on_conflict_do_nothing(
        index_elements=["event_id"]).returning(kiosk_events.c.event_id)
    with store.tx() as tx:  # RETURNING, not rowcount: psycopg answers -1 for this INSERT on the store's connections
        return tx.conn.execute(stmt).first() is not None
