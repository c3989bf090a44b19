"""Caller pseudonyms: the keyed hash, where it is applied, and what never leaves unhashed.

Raw callers below are numbers from the ranges reserved for drama and documentation (Ofcom's
01632 96xxxx, NANP 555-01xx), so a leak in a failing test leaks nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any

import orjson
import pytest

from callpulse.pseudonym import (
    DEV_KEY,
    KNOWN_CALLERS,
    Pseudonymiser,
    effective_key,
    is_pseudonym,
    key_problem,
)
from callpulse.settings import Settings
from stream.decode import Rejection
from stream.ingress import validate_batch
from stream.validation import EventValidator
from tests.unit.securityfixtures import INGEST_TOKEN, TEST_KEY, bearer, secured_client

RAW = "+441632960000"
OTHER_RAW = "+12025550142"
PSEUDONYM = re.compile(r"ph1:[0-9a-f]{32}")
hash_of = Pseudonymiser(TEST_KEY)


def expected(caller: str, key: str = TEST_KEY) -> str:
    """Written from the documented scheme, not from the module under test."""
    digest = hmac.new(key.encode(), caller.encode(), hashlib.sha256).hexdigest()
    return "ph1:" + digest[:32]


# --- the hash ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        RAW,  # E.164
        "01632 960000",  # national format with a space
        "sip:alice@example.com",  # a SIP URI
        "caller-Ω",  # non-ASCII
        "x",  # one character
        "ph1:" + "0" * 31,  # one hex digit short of a pseudonym: still hashed
        "PH1:" + "0" * 32,  # upper-case prefix: not ours, hashed
        "ph1:" + "A" * 32,  # upper-case hex: not ours, hashed
    ],
)
def test_a_caller_becomes_its_keyed_hash(caller: str) -> None:
    pseudonym = hash_of(caller)
    assert pseudonym == expected(caller)
    assert PSEUDONYM.fullmatch(pseudonym)
    assert caller not in pseudonym


def test_the_scheme_is_pinned() -> None:
    # A changed scheme would split every repeat caller in two across an upgrade.
    assert hash_of(RAW) == "ph1:562dc25f7bb13659564df2c967e3bc2f"


def test_same_caller_same_pseudonym_other_caller_or_key_another() -> None:
    assert hash_of(RAW) == Pseudonymiser(TEST_KEY)(RAW)  # repeat callers stay one caller
    assert hash_of(RAW) != hash_of(OTHER_RAW)
    assert hash_of(RAW) != Pseudonymiser(TEST_KEY + "2")(RAW)  # without the key, no match


def test_a_pseudonym_is_left_alone() -> None:
    once = hash_of(RAW)
    assert is_pseudonym(once)
    assert hash_of(once) == once  # the API's ingest and the worker's stage one both apply it
    assert Pseudonymiser("another-key-0123456789")(once) == once


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser("")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "not set"),  # nothing configured
        (DEV_KEY, "placeholder"),  # the public development key
        ("changethis", "placeholder"),  # the usual template placeholder
        ("  ChangeMe ", "placeholder"),  # case and spaces do not hide it
        ("short-key", "shorter than 16"),  # guessable by brute force
        ("a" * 15, "shorter than 16"),  # one under the minimum
    ],
)
def test_unfit_keys_are_named(key: str, problem: str) -> None:
    message = key_problem(key)
    assert message is not None
    assert problem in message
    assert "CALLPULSE_PSEUDONYM_KEY" in message


@pytest.mark.parametrize("key", ["a" * 16, TEST_KEY])  # the minimum length; a real one
def test_fit_keys_pass(key: str) -> None:
    assert key_problem(key) is None


def test_without_a_key_the_public_dev_key_is_used() -> None:
    assert effective_key(Settings()) == DEV_KEY
    assert effective_key(Settings(pseudonym_key=TEST_KEY)) == TEST_KEY


# --- events and dead letters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "after"),
    [
        (
            {"type": "call.offered", "caller": RAW},
            {"type": "call.offered", "caller": expected(RAW)},
        ),
        ({"type": "call.offered"}, {"type": "call.offered"}),  # caller is optional
        ({"type": "call.answered", "agent_id": "a1"}, {"type": "call.answered", "agent_id": "a1"}),
        ({"caller": expected(RAW)}, {"caller": expected(RAW)}),  # already a pseudonym
    ],
)
def test_event_caller_replaced(event: dict[str, Any], after: dict[str, Any]) -> None:
    assert hash_of.event(dict(event)) == after


def dlq_text(rejection: Rejection) -> str:
    return orjson.dumps(rejection.to_dlq(source="test", received_at="now")).decode()


@pytest.mark.parametrize(
    "rejection",
    [
        # a top-level caller in an invalid event
        Rejection("missing_field", "x", event={"type": "call.offered", "caller": RAW}),
        # a caller sent as a number: the digits are the number
        Rejection("wrong_type", "x", event={"type": "call.offered", "caller": 441632960000}),
        # nested: an array where an event should be
        Rejection("not_an_object", "x", event=[[{"caller": RAW}], {"caller": RAW}]),
        # undecodable JSON text
        Rejection("invalid_json", "x", raw='{"caller": "' + RAW + '", "type": '),
        # text cut short inside the caller
        Rejection("invalid_json", "x", raw='[{"caller":"' + RAW[:8]),
        # the validator quotes the start of a bad value in its detail
        Rejection("invalid_value", f"call.offered: field 'caller' is too long, got '{RAW}...'"),
    ],
)
def test_dead_letters_carry_no_raw_caller(rejection: Rejection) -> None:
    scrubbed = hash_of.rejection(rejection)
    text = dlq_text(scrubbed)
    for fragment in (RAW, RAW[1:9], "441632960000"):
        assert fragment not in text, text
    assert scrubbed.reason == rejection.reason


def test_a_scrubbed_event_keeps_the_repeat_caller_link() -> None:
    rejection = Rejection("missing_field", "x", event={"type": "call.offered", "caller": RAW})
    event = hash_of.rejection(rejection).event
    assert isinstance(event, dict)
    assert event["caller"] == expected(RAW)


def test_a_rejection_without_a_caller_is_unchanged() -> None:
    rejection = Rejection("missing_field", "event: field 'type' is required", event={"q": 1})
    assert hash_of.rejection(rejection) is rejection


# --- the worker's validate stage ---------------------------------------------------------------


def offered(event_id: str, caller: Any, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "call.offered", "ts": time.time(), "queue": "sales",
            "call_id": event_id, "caller": caller, **fields}  # fmt: skip


def test_worker_pseudonymises_what_producers_put_straight_into_kafka() -> None:
    messages = [
        orjson.dumps(offered("e1", RAW)),  # one event
        orjson.dumps([offered("e2", OTHER_RAW), offered("e3", expected(RAW))]),  # a batch
        orjson.dumps([offered("e4", RAW, queue=7)]),  # invalid: to the dead-letter topic
        b'{"caller": "' + RAW.encode() + b'", ',  # not JSON at all
    ]
    grouped, rejections = validate_batch(EventValidator(), messages, hash_of)
    events = [event for group in grouped.values() for event in group]
    assert {e["event_id"]: e["caller"] for e in events} == {
        "e1": expected(RAW),
        "e2": expected(OTHER_RAW),
        "e3": expected(RAW),  # came in pseudonymised (from the API): not hashed twice
    }
    assert len(rejections) == 2
    forwarded = orjson.dumps(list(grouped.values())).decode() + "".join(map(dlq_text, rejections))
    assert RAW not in forwarded and OTHER_RAW not in forwarded


def test_worker_without_a_pseudonymiser_still_hashes() -> None:
    grouped, _ = validate_batch(EventValidator(), [orjson.dumps(offered("e1", RAW))])
    [[event]] = grouped.values()
    assert event["caller"] == expected(RAW, DEV_KEY)


# --- the API's ingest ----------------------------------------------------------------------


def test_ingest_publishes_pseudonyms_only(caplog: pytest.LogCaptureFixture) -> None:
    client, published = secured_client()
    body = [offered("i1", RAW), offered("i2", OTHER_RAW), offered("i3", RAW, call_id=5)]
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            "/v1/events", content=orjson.dumps(body), headers=bearer(INGEST_TOKEN)
        )
    assert response.status_code == 422  # i3 is invalid; i1 and i2 are accepted
    assert [e["caller"] for e in published.events] == [expected(RAW), expected(OTHER_RAW)]
    assert len(published.rejections) == 1
    seen = (
        response.text
        + orjson.dumps(published.events).decode()
        + "".join(dlq_text(r) for r in published.rejections)
        + caplog.text
    )
    assert RAW not in seen and OTHER_RAW not in seen


def test_ingest_then_worker_is_one_hash() -> None:
    """What the API publishes, the worker forwards unchanged: one caller, one pseudonym."""
    client, published = secured_client()
    client.post(
        "/v1/events", content=orjson.dumps([offered("j1", RAW)]), headers=bearer(INGEST_TOKEN)
    )
    grouped, _ = validate_batch(EventValidator(), [orjson.dumps(published.events)], hash_of)
    [[event]] = grouped.values()
    direct, _ = validate_batch(EventValidator(), [orjson.dumps(offered("j2", RAW))], hash_of)
    [[direct_event]] = direct.values()
    assert event["caller"] == direct_event["caller"] == expected(RAW)


def test_remembered_callers_get_the_same_pseudonym_and_the_memory_stays_bounded() -> None:
    pseudonymise = Pseudonymiser(TEST_KEY)
    callers = [f"+4416329{n:05d}" for n in range(KNOWN_CALLERS + 100)]
    for _ in range(2):  # the second round partly from memory, partly after it was cleared
        for caller in (RAW, *callers, RAW, OTHER_RAW):
            assert pseudonymise(caller) == expected(caller)
            assert len(pseudonymise._known) <= KNOWN_CALLERS
    already = expected(RAW)
    assert pseudonymise(already) == already  # a pseudonym passes, remembered or not
    assert pseudonymise(already) == already
