"""Text clean-up before synthesis."""
import re

_TICKET = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,3})([0-9]{1,5})(?![A-Za-z0-9])")


def spell_tickets(text: str) -> str:
    """Space out ticket numbers so engines read them character by character.

    "Number A012, please go to room 3" -> "Number A 0 1 2, please go to room 3": a patient
    listens for "A zero one two", not "A twelve".
    """
    return _TICKET.sub(lambda m: " ".join(m.group(1) + m.group(2)), text)
