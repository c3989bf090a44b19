"""Typed settings from ``CALLPULSE_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from callpulse.tokens import parse_entry, split_entries

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", env_file=".env", extra="ignore")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    # "all" is right for Apache Kafka; the embedded dev broker needs 1 (it under-reports end
    # offsets for acks=all batches, which would cut table recovery short).
    kafka_acks: Literal["all", "1", "0"] = "all"
    kafka_session_timeout_s: float = 10.0
    kafka_heartbeat_interval_s: float = 3.0
    # How long a fetch may wait for data. Apache Kafka answers as soon as data arrives; the
    # embedded broker holds every fetch this long, so there it is the pipeline's latency per hop.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)
    events_topic: str = "call-events"
    dlq_topic: str = "call-events-dlq"
    app_id: str = "callpulse"
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)

    # Worker
    store: str = "memory://"  # rocksdb:// in production (needs the rocksdb extra)
    # 8 days: `at` a week back plus a whole `today` before it (compare=last_week).
    retention_s: float = Field(default=8 * 86400, gt=0)
    max_future_s: float = Field(default=600, ge=0)
    call_state_ttl_s: float = Field(default=2 * 3600, gt=0)
    max_call_wait_s: float = Field(default=4 * 3600, gt=0)
    ingest_batch_max: int = Field(default=2000, ge=1)
    ingest_batch_within_s: float = Field(default=0.02, gt=0)
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "info"
    # gc.freeze after every stage-2 batch (callpulse/heap.py); false: CPython's own collections.
    worker_gc_freeze: bool = True

    # Queues: YAML file with defaults and per-queue overrides (see README).
    queues_config: Path | None = None
    # Adapters (docs/ADAPTERS.md): Twilio activity names, Asterisk aliases, generic mappings.
    adapters_config: Path | None = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    sse_interval_s: float = Field(default=1.0, gt=0)

    # Alerts (docs/ALERTS.md): rules live in the queues file's `alerts:` section. With several
    # API replicas, leave alerts enabled on one only (each would notify).
    alerts_enabled: bool = True
    alerts_topic: str = "callpulse-alerts"
    alerts_dlq_topic: str = "callpulse-alerts-dlq"
    alerts_webhook_urls: str = ""  # comma-separated; the transition as JSON
    alerts_slack_webhook_urls: str = ""  # comma-separated; Slack-compatible {"text": ...}
    alerts_eval_interval_s: float = Field(default=1.0, gt=0)  # also re-checked on every change
    alerts_retry_attempts: int = Field(default=5, ge=1)
    alerts_retry_initial_s: float = Field(default=1.0, gt=0)  # doubles after each failed try
    alerts_retry_max_s: float = Field(default=60.0, gt=0)
    alerts_webhook_timeout_s: float = Field(default=5.0, gt=0)

    # Security (docs/SECURITY.md). Tokens: "sha256:<hex>:<scopes>" entries, a JSON list or
    # comma-separated; `callpulse token` prints one. No tokens: the app is open, which only
    # `callpulse dev` and CALLPULSE_INSECURE=true let `callpulse api` run.
    tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tokens_file: Path | None = None
    insecure: bool = False
    metrics_auth: bool = False
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    pseudonym_key: SecretStr = SecretStr("")

    # Kafka client security, passed to every client (callpulse.kafka.client_kwargs) and Faust.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True

    @field_validator("tokens", mode="before")
    @classmethod
    def _token_entries(cls, value: Any) -> Any:
        entries = split_entries(value) if isinstance(value, str) else value
        # Refuse a malformed entry at start, naming it, instead of a token that never matches.
        return [parse_entry(e).line if isinstance(e, str) else e for e in entries or []]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"CALLPULSE_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "CALLPULSE_KAFKA_SASL_USERNAME and CALLPULSE_KAFKA_SASL_PASSWORD"
            )
        tls_files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if not protocol.endswith("SSL") and any(tls_files):
            # A CA or certificate without TLS would be ignored: the connection stays plaintext.
            raise ValueError(
                f"CALLPULSE_KAFKA_SSL_* files are set but CALLPULSE_KAFKA_SECURITY_PROTOCOL is "
                f"{protocol}: use SSL or SASL_SSL"
            )
        return self

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

    @property
    def validate_group(self) -> str:
        """Stage one's consumer group (stream.ingress): a plain consumer, apart from Faust's."""
        return f"{self.app_id}-validate"


@lru_cache
def get_settings() -> Settings:
    return Settings()
