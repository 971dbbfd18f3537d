"""Logging set-up shared by every app's command line: one line per event, on stderr (the journal).

Kivy, by default, hangs its own console handler on the root logger, so with Python's handler too
every line came out twice. ``setup_logging`` puts Kivy in its ``PYTHON`` log mode (no handlers of
its own: its records go through ours) before Kivy is imported; under systemd (``JOURNAL_STREAM``)
the line carries no timestamp, which the journal adds itself.
"""
import logging
import os
import sys

FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False, *, level: str | None = None) -> None:
    """One stderr handler for the whole process; ``$CLINICFLOW_LOG`` (INFO) or ``level`` sets the level."""
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # must be set before Kivy is first imported
    chosen = "DEBUG" if verbose else (level or os.environ.get("CLINICFLOW_LOG") or "INFO")
    name = chosen.upper()
    numeric = getattr(logging, name, logging.INFO)
    kivy_has_console = "kivy.logger" in sys.modules and os.environ.get("KIVY_LOG_MODE") != "PYTHON"
    if kivy_has_console:
        logging.getLogger().setLevel(numeric)  # Kivy already prints every record: a second handler would double it
    else:
        fmt = FORMAT if os.environ.get("JOURNAL_STREAM") else "%(asctime)s " + FORMAT
        logging.basicConfig(level=numeric, format=fmt, force=True)
        # The level goes on the handler too: records of loggers with their own level (Kivy's is INFO)
        # propagate to it without passing the root logger's level.
        for handler in logging.getLogger().handlers:
            handler.setLevel(numeric)
    # amqtt and its state machine log every transition at INFO.
    for noisy in ("transitions", "amqtt", "hbmqtt", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
