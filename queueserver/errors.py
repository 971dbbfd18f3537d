"""The queue's domain errors: what went wrong, in a plain sentence for the person at the screen.

Every error is a ``ClinicflowError`` that also inherits the builtin-like family it belongs
to (``NotFoundError``, ``ConflictError``, ``ForbiddenError``, ``BadRequestError``), so a
caller may catch a family or one precise case. Only the HTTP layer turns them into status
codes (``queueserver.app.STATUS_OF``); the domain never names one.
"""
from __future__ import annotations

from protocol.errors import ClinicflowError, ConflictError, NotFoundError


class BadRequestError(ClinicflowError, ValueError):
    """Input that is well-formed but names something impossible (a placement that does not exist)."""


class ForbiddenError(ClinicflowError, PermissionError):
    """The caller's role or rooms do not allow this."""


class NotAuthenticated(ClinicflowError, PermissionError):
    """No bearer token, or one this server does not know."""


class Unavailable(ClinicflowError, ConnectionError):
    """The queue core cannot answer just now (it is restarting); the same request may be retried."""


# ------------------------------------------------------------------ not found
class RoomNotFound(NotFoundError):
    """No room with this id in the hospital file."""


class DepartmentNotFound(NotFoundError):
    """No department with this id in the hospital file."""


class TicketNotFound(NotFoundError):
    """No ticket with this id."""


class AppointmentNotFound(NotFoundError):
    """The hospital backend knows no such appointment."""


class PatientNotFound(NotFoundError):
    """The hospital backend knows no such patient (a walk-in for an identified patient)."""


# ------------------------------------------------------------------ not allowed
class NotYourRoom(ForbiddenError):
    """A clinician acted on a ticket or room outside the rooms of their token."""


# ------------------------------------------------------------------ conflicts
class RoomClosed(ConflictError):
    """The room is paused or closed: resume it before calling patients."""


class RoomAlreadyInStatus(ConflictError):
    """Pause a paused room, open an open one."""


class NothingWaiting(ConflictError):
    """Call-next in a room nobody is waiting for."""


class NoCurrentPatient(ConflictError):
    """Recall, no-show, start or finish in a room with nobody called."""


class TicketStateConflict(ConflictError):
    """The ticket's status does not allow this (already done, not waiting, cancelled...)."""


class NotQueuedHere(ConflictError):
    """The chosen ticket is queued for another room or department."""


class CalledElsewhere(ConflictError):
    """Another replica called this ticket between our read and our write; calling again picks another."""


class RecallLimitReached(ConflictError):
    """The ticket was recalled as often as the rules allow."""


class RecallTooSoon(ConflictError):
    """A recall inside the rules' minimum spacing."""


class CallNextTooSoon(ConflictError):
    """A call-next right after the same caller's previous call in the room, not confirmed (a double click?)."""


class DepartmentClosed(ConflictError):
    """A walk-in outside the department's opening hours."""


class DailyCapacityReached(ConflictError):
    """The department issued as many walk-in tickets today as it can see."""


class AppointmentNotUsable(ConflictError):
    """The appointment cannot be checked in now (cancelled, another site, another day, too early)."""


class SurveyNotOpen(ConflictError):
    """A rating before the visit is finished, or a second one."""


class IdempotencyKeyReused(ConflictError):
    """The Idempotency-Key was already used for a different request."""


class ConfigurationConflict(ConflictError):
    """A hospital configuration change that would strand patients or rename the site."""


__all__ = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, ClinicflowError)]
