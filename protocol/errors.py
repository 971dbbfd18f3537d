"""One error root for clinicflow; subclasses also inherit the builtin they resemble."""


class ClinicflowError(Exception):
    """Base of every error clinicflow raises on purpose."""


class ProtocolError(ClinicflowError, ValueError):
    """A payload or topic that does not follow the v1 contract (bad JSON, wrong version, extra keys, too big)."""


class NotFoundError(ClinicflowError, LookupError):
    """An unknown room, ticket, appointment, patient or device."""


class ConflictError(ClinicflowError, RuntimeError):
    """An operation that the current state does not allow (for example calling a ticket already served)."""


class DeviceError(ClinicflowError, OSError):
    """A peripheral (printer, scanner, card reader, speaker, GPIO) failed or is not there."""
