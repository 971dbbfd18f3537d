"""A real Mosquitto per test session, on a free loopback port, stopped by its PID."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from clinicflow.broker import MosquittoBroker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """The session's broker: ``.url``, ``.host``, ``.port``, ``.restart()``; anonymous, no persistence."""
    broker = MosquittoBroker(workdir=tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def private_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A broker of the test's own, for tests that restart or reconfigure it."""
    broker = MosquittoBroker(workdir=tmp_path_factory.mktemp("mosquitto-private")).start()
    try:
        yield broker
    finally:
        broker.stop()
