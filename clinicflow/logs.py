"""Logging set-up shared by every app's command line."""
import logging
import os


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("CLINICFLOW_LOG", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # amqtt and its state machine log every transition at INFO.
    for noisy in ("transitions", "amqtt", "hbmqtt", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
