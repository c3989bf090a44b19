"""The CLI's side of security: `callpulse token`, and `api`/`worker` refusing to run open.

Every refusal must come before any connection: the bootstrap below points at a closed port,
so a command that went on would hang in its Kafka retries instead of exiting 2 at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callpulse.cli import cli
from callpulse.pseudonym import DEV_KEY
from callpulse.tokens import hash_token, parse_entry

GOOD_KEY = "cli-test-pseudonym-key-0123456789"
TOKEN_LINE = "sha256:" + "ab" * 32 + ":read"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CALLPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    monkeypatch.setenv("CALLPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:1")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "scopes"),
    [
        ((), {"read"}),  # the default: a wallboard's token
        (("--scope", "ingest"), {"ingest"}),
        (("--scope", "read", "--scope", "ingest"), {"read", "ingest"}),
        (("--scope", "ADMIN"), {"admin"}),  # case-insensitive
    ],
)
def test_token_prints_a_token_and_its_hash_line(args: tuple[str, ...], scopes: set[str]) -> None:
    code, out, err = run("token", *args)
    assert code == 0, err
    token = re.search(r"^token (\S+)$", out, re.MULTILINE)
    line = re.search(r"^hash +(\S+)$", out, re.MULTILINE)
    assert token and line, out
    assert re.fullmatch(r"cp_[A-Za-z0-9_-]{43}", token[1])  # 256 random bits, URL-safe
    entry = parse_entry(line[1])
    assert entry.digest_hex == hash_token(token[1])
    assert entry.scopes == scopes
    assert "CALLPULSE_TOKENS" in err  # where the line goes


def test_every_token_is_new() -> None:
    tokens = {run("token")[1].split()[1] for _ in range(20)}
    assert len(tokens) == 20


def test_token_with_an_unknown_scope() -> None:
    code, _, err = run("token", "--scope", "write")
    assert code == 2
    assert "write" in err and "read, ingest, admin" in err


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        # nothing configured: both problems, and the way out
        ("api", {}, ["CALLPULSE_TOKENS", "CALLPULSE_PSEUDONYM_KEY", "CALLPULSE_INSECURE"]),
        # tokens but no key
        ("api", {"CALLPULSE_TOKENS": TOKEN_LINE}, ["CALLPULSE_PSEUDONYM_KEY", "not set"]),
        # a key but no tokens
        ("api", {"CALLPULSE_PSEUDONYM_KEY": GOOD_KEY}, ["CALLPULSE_TOKENS", "CALLPULSE_INSECURE"]),
        # the public development key outside `callpulse dev`
        ("api", {"CALLPULSE_TOKENS": TOKEN_LINE, "CALLPULSE_PSEUDONYM_KEY": DEV_KEY},
         ["placeholder"]),
        # the worker serves no HTTP, but it hashes callers
        ("worker", {}, ["CALLPULSE_PSEUDONYM_KEY", "CALLPULSE_INSECURE"]),
        ("worker", {"CALLPULSE_PSEUDONYM_KEY": "short"}, ["shorter than 16"]),
        # an empty tokens file is no tokens
        ("api", {"CALLPULSE_TOKENS_FILE": "tokens.txt", "CALLPULSE_PSEUDONYM_KEY": GOOD_KEY},
         ["no API tokens"]),
    ],
)  # fmt: skip
def test_refuses_to_run_open(
    monkeypatch: pytest.MonkeyPatch, command: str, env: dict[str, str], named: list[str]
) -> None:
    Path("tokens.txt").write_text("# no tokens yet\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(command)
    assert code == 2
    assert "refusing to start" in err
    for text in named:
        assert text in err


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # a raw token pasted where its hash belongs: refused, and not printed back
        ({"CALLPULSE_TOKENS": "cp_" + "Z" * 43}, "CALLPULSE_TOKENS"),
        ({"CALLPULSE_TOKENS": "sha256:abc:read"}, "64 hex digits"),  # a truncated hash
        ({"CALLPULSE_TOKENS": TOKEN_LINE.replace("read", "write")}, "write"),  # unknown scope
        ({"CALLPULSE_TOKENS_FILE": "missing.txt"}, "missing.txt"),  # names the file
    ],
)
def test_bad_token_configuration_stops_the_api(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("CALLPULSE_PSEUDONYM_KEY", GOOD_KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run("api")
    assert code == 2
    assert named in err
    assert "Z" * 20 not in err


@pytest.mark.parametrize(
    ("args", "loop"),
    [
        ((), "asyncio"),  # the default: accepts every waiting connection at once
        (("--loop", "uvloop"), "uvloop"),
    ],
)
def test_the_api_runs_on_the_chosen_event_loop(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], loop: str
) -> None:
    started: dict[str, object] = {}

    async def no_topics(*_: object) -> None:
        return None

    monkeypatch.setenv("CALLPULSE_INSECURE", "true")
    monkeypatch.setattr("callpulse.cli._ensure_topics", no_topics)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: started.update(options))
    code, _, err = run("api", *args)
    assert code == 0, err
    assert started["loop"] == loop


def test_an_unknown_event_loop_stops_the_api() -> None:
    code, _, err = run("api", "--loop", "trio")
    assert code == 2
    assert "--loop" in err
