"""What the queue's operations return: domain results, not HTTP answers.

A check-in or walk-in gives an ``Issued`` (the ticket, and whether it is new or the one the
patient already had); calls give a ``protocol.api.CallOut``; moves of a ticket give its
``TicketOut``; a room's status change gives its ``RoomState``; closing the day a
``DayClosed``. The HTTP layer decides what status each of them is answered with.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.api import TicketOut


@dataclass(frozen=True)
class Issued:
    """A ticket for a check-in or walk-in: ``created`` is False when the patient already had it today."""

    ticket: TicketOut
    created: bool


@dataclass(frozen=True)
class DayClosed:
    """End of day: tickets cancelled (waiting or called) and finished (being served)."""

    cancelled: int
    finished: int


@dataclass(frozen=True)
class QueueEntry:
    """One waiting ticket in a room's calling order, for the clinician page."""

    ticket_id: str
    number: str
    position: int
    reason: str
    category: str
    waited_min: int
    masked_name: str
    priority: str | None
    long_wait: bool
