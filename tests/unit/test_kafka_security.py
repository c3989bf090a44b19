"""Kafka client security from settings: the same options reach aiokafka and Faust.

No TLS broker is needed: the tests build the real client objects (and a real TLS context from
certificates made here with openssl) and look at what they were given.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from callpulse.kafka import client_kwargs, faust_credentials, ssl_context
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig

USER = "callpulse-svc"
PASSWORD = "s3cret-sasl-password"  # a test value
KEY_PASSWORD = "s3cret-key-password"
SECURITY_KEYS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and a client certificate whose key is encrypted with KEY_PASSWORD."""
    directory = tmp_path_factory.mktemp("certs")
    paths = {name: directory / name for name in ("ca.pem", "ca.key", "client.pem", "client.key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "2", "-x509"]
    subprocess.run(
        ["openssl", "req", *ec, "-nodes", "-subj", "/CN=callpulse-test-ca",
         "-keyout", paths["ca.key"], "-out", paths["ca.pem"]],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", *ec, "-subj", "/CN=callpulse-client", "-passout",
         f"pass:{KEY_PASSWORD}", "-keyout", paths["client.key"], "-out", paths["client.pem"]],
        check=True, capture_output=True,
    )  # fmt: skip
    return paths


def settings_for(protocol: str, mechanism: str = "PLAIN", **extra: Any) -> Settings:
    options: dict[str, Any] = {"kafka_bootstrap": "broker-1:9093,broker-2:9093"}
    options["kafka_security_protocol"] = protocol
    options["kafka_sasl_mechanism"] = mechanism
    if protocol.startswith("SASL_"):
        options |= {"kafka_sasl_username": USER, "kafka_sasl_password": PASSWORD}
    return Settings(**options | extra)


@pytest.mark.parametrize(
    ("protocol", "mechanism", "tls", "sasl"),
    [
        ("PLAINTEXT", "PLAIN", False, False),  # the default: development and the embedded broker
        ("SSL", "PLAIN", True, False),  # TLS only; the mechanism is irrelevant and not sent
        ("SASL_PLAINTEXT", "PLAIN", False, True),  # credentials without TLS
        ("SASL_SSL", "PLAIN", True, True),  # e.g. hosted Kafka
        ("SASL_SSL", "SCRAM-SHA-256", True, True),
        ("SASL_SSL", "SCRAM-SHA-512", True, True),  # e.g. Amazon MSK
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", False, True),
    ],
)
def test_client_kwargs(protocol: str, mechanism: str, tls: bool, sasl: bool) -> None:
    kwargs = client_kwargs(settings_for(protocol, mechanism))
    assert kwargs["bootstrap_servers"] == "broker-1:9093,broker-2:9093"
    assert kwargs["security_protocol"] == protocol
    assert isinstance(kwargs.get("ssl_context"), ssl.SSLContext) is tls
    if sasl:
        assert kwargs["sasl_mechanism"] == mechanism
        assert kwargs["sasl_plain_username"] == USER
        assert kwargs["sasl_plain_password"] == PASSWORD  # the secret itself, not its mask
    else:
        assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(kwargs)


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("PLAINTEXT", "PLAIN"), ("SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
     ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN")],
)  # fmt: skip
async def test_every_aiokafka_client_accepts_them(protocol: str, mechanism: str) -> None:
    kwargs = client_kwargs(settings_for(protocol, mechanism))
    producer = AIOKafkaProducer(**kwargs)
    consumer = AIOKafkaConsumer(**kwargs, group_id=None)
    admin = AIOKafkaAdminClient(**kwargs)
    for client in (producer.client, consumer._client, admin._client):
        assert client._security_protocol == protocol
        assert (client._ssl_context is not None) is protocol.endswith("SSL")
        if protocol.startswith("SASL_"):
            assert client._sasl_mechanism == mechanism
            assert client._sasl_plain_password == PASSWORD
    await producer.stop()
    await consumer.stop()
    await admin.close()


def test_tls_context_verifies_the_broker_by_default(certs: dict[str, Path]) -> None:
    context = ssl_context(settings_for("SSL", kafka_ssl_cafile=certs["ca.pem"]))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "callpulse-test-ca"} in subjects  # our CA, not only the system's


def test_tls_hostname_check_can_be_turned_off_but_not_verification(certs: dict[str, Path]) -> None:
    settings = settings_for("SSL", kafka_ssl_cafile=certs["ca.pem"], kafka_ssl_check_hostname=False)
    context = ssl_context(settings)
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_client_certificate_with_encrypted_key(certs: dict[str, Path]) -> None:
    files = {"kafka_ssl_certfile": certs["client.pem"], "kafka_ssl_keyfile": certs["client.key"]}
    assert ssl_context(settings_for("SASL_SSL", **files, kafka_ssl_key_password=KEY_PASSWORD))
    with pytest.raises(ssl.SSLError):
        ssl_context(settings_for("SSL", **files, kafka_ssl_key_password="wrong"))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        # SASL without credentials would fail at the first connection, far from the cause
        ({"kafka_security_protocol": "SASL_SSL"}, "CALLPULSE_KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": USER},
         "CALLPULSE_KAFKA_SASL_PASSWORD"),
        # a CA file with PLAINTEXT: whoever set it believes the connection is encrypted
        ({"kafka_ssl_cafile": Path("/etc/ssl/ca.pem")}, "CALLPULSE_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),  # not a Kafka name
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),  # not supported here
    ],
)  # fmt: skip
def test_inconsistent_settings_are_refused(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**options)
    assert named in str(raised.value)


def test_secrets_are_masked_in_settings_output() -> None:
    settings = settings_for("SASL_SSL", kafka_ssl_key_password=KEY_PASSWORD, pseudonym_key="k" * 32)
    shown = repr(settings) + str(settings.model_dump())
    for secret in (PASSWORD, KEY_PASSWORD, "k" * 32):
        assert secret not in shown


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLPULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CALLPULSE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CALLPULSE_KAFKA_SASL_USERNAME", USER)
    monkeypatch.setenv("CALLPULSE_KAFKA_SASL_PASSWORD", PASSWORD)
    kwargs = client_kwargs(Settings())
    assert {k: kwargs[k] for k in SECURITY_KEYS} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }


@pytest.mark.parametrize(
    ("protocol", "mechanism", "credentials_type"),
    [
        ("PLAINTEXT", "PLAIN", type(None)),  # Faust's default: plaintext
        ("SSL", "PLAIN", faust.SSLCredentials),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256", faust.SASLCredentials),
        ("SASL_SSL", "SCRAM-SHA-512", faust.SASLCredentials),
        ("SASL_SSL", "PLAIN", faust.SASLCredentials),
    ],
)
def test_faust_gets_what_aiokafka_gets(
    protocol: str, mechanism: str, credentials_type: type
) -> None:
    settings = settings_for(protocol, mechanism)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, credentials_type)
    # Faust turns credentials into aiokafka options itself: they must equal ours.
    faust_kwargs = dict(credentials_to_aiokafka_auth(credentials))
    ours = client_kwargs(settings)
    assert {k: faust_kwargs.get(k) for k in SECURITY_KEYS} == {
        k: ours.get(k) for k in SECURITY_KEYS
    }
    assert (faust_kwargs.get("ssl_context") is None) is ("ssl_context" not in ours)


def test_the_worker_app_is_built_with_the_credentials() -> None:
    from stream.worker import create_worker_app

    app = create_worker_app(settings_for("SASL_SSL", "SCRAM-SHA-512"), CentreConfig())
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert (credentials.username, credentials.mechanism.value) == (USER, "SCRAM-SHA-512")
