"""Real parts for integration tests: the embedded broker, and callpulse's own processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callpulse.broker import EmbeddedBroker, start_embedded_broker
from tests.integration.stack import Stack, start_stack


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = start_embedded_broker(log_path=tmp_path_factory.mktemp("broker") / "broker.log")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def broker(embedded_broker: EmbeddedBroker) -> str:
    """Bootstrap address of the session's embedded broker."""
    return embedded_broker.bootstrap


@pytest.fixture
def stack(broker: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A worker and an API on their own topics (one test's data never meets another's)."""
    running = start_stack(broker, tmp_path, name=request.node.name)
    try:
        yield running
    finally:
        running.stop()
