"""Typed settings from ``CALLPULSE_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", env_file=".env", extra="ignore")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    # "all" is right for Apache Kafka; the embedded dev broker needs 1 (it under-reports end
    # offsets for acks=all batches, which would cut table recovery short).
    kafka_acks: Literal["all", "1", "0"] = "all"
    kafka_session_timeout_s: float = 10.0
    kafka_heartbeat_interval_s: float = 3.0
    events_topic: str = "call-events"
    dlq_topic: str = "call-events-dlq"
    app_id: str = "callpulse"
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)

    # Worker
    store: str = "memory://"  # rocksdb:// in production (needs the rocksdb extra)
    retention_s: float = Field(default=3 * 86400, gt=0)
    max_future_s: float = Field(default=600, ge=0)
    call_state_ttl_s: float = Field(default=2 * 3600, gt=0)
    max_call_wait_s: float = Field(default=4 * 3600, gt=0)
    ingest_batch_max: int = Field(default=2000, ge=1)
    ingest_batch_within_s: float = Field(default=0.02, gt=0)
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "info"

    # Queues: YAML file with defaults and per-queue overrides (see README).
    queues_config: Path | None = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    sse_interval_s: float = Field(default=1.0, gt=0)

    @property
    def state_table(self) -> str:
        return "state"

    @property
    def state_changelog_topic(self) -> str:
        """Faust names a table's changelog ``{app_id}-{table}-changelog``."""
        return f"{self.app_id}-{self.state_table}-changelog"

    @property
    def routed_topic(self) -> str:
        """Valid events re-keyed so all state of a queue (or agent) lives on one partition."""
        return f"{self.app_id}-routed-events"


@lru_cache
def get_settings() -> Settings:
    return Settings()
