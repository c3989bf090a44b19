"""Tokens, a settings object that uses them, and an ingest publisher that keeps what it gets.

The publisher stands in for Kafka only (unit tests have no broker): the route, validator and
pseudonymiser in front of it are the real ones. ``tests/integration/test_security.py`` runs
the same path through a real broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.services import Services
from callpulse.settings import Settings
from callpulse.tokens import entry_for
from stream.decode import Rejection
from tests.unit.apifixtures import T0_US, TestClient, build_services, client_for, s, scenario_events

# Fixed tokens, so a failing test names the same token every run.
READ_TOKEN = "cp_test-read-token-0123456789abcdefghijklmnopqrstu"
INGEST_TOKEN = "cp_test-ingest-token-0123456789abcdefghijklmnopqr"
ADMIN_TOKEN = "cp_test-admin-token-0123456789abcdefghijklmnopqrs"
BOTH_TOKEN = "cp_test-read-ingest-token-0123456789abcdefghijklm"
UNKNOWN_TOKEN = "cp_test-never-configured-0123456789abcdefghijklmn"
TOKEN_LINES = [
    entry_for(READ_TOKEN, ["read"]).line,
    entry_for(INGEST_TOKEN, ["ingest"]).line,
    entry_for(ADMIN_TOKEN, ["admin"]).line,
    entry_for(BOTH_TOKEN, ["read", "ingest"]).line,
]
TEST_KEY = "unit-test-pseudonym-key-0123456789"


class RecordingPublisher:
    """What ingest would have written to Kafka: accepted events and dead-letter rejections."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.rejections: list[Rejection] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(
        self, events: Sequence[dict[str, Any]], rejections: Sequence[Rejection], *, now_s: float
    ) -> None:
        self.events.extend(events)
        self.rejections.extend(rejections)


def secured_services(**settings: Any) -> tuple[Services, RecordingPublisher]:
    """The scenario's services with the test tokens (override any setting by keyword)."""
    options: dict[str, Any] = {"tokens": TOKEN_LINES, "pseudonym_key": TEST_KEY}
    options.update(settings)
    services = build_services(
        scenario_events(), now_us=T0_US + s(3600), settings=Settings(**options)
    )
    publisher = RecordingPublisher()
    services.publisher = publisher  # type: ignore[assignment]
    return services, publisher


def secured_client(**settings: Any) -> tuple[TestClient, RecordingPublisher]:
    services, publisher = secured_services(**settings)
    return client_for(services, raise_server_exceptions=False), publisher


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
