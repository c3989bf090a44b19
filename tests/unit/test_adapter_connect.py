"""Amazon Connect contact records to contract events, plain and in Firehose/Kinesis envelopes."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callpulse.adapters.amazon_connect import map_record, unwrap
from callpulse.adapters.core import Skipped, Unmappable
from callpulse.adapters.documents import json_documents

FIXTURE = Path(__file__).parents[1] / "data" / "amazon_connect" / "contact-records.ndjson"
RECORDS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def by_type(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = map_record(record)
    assert isinstance(events, list)
    assert len({e["event_id"] for e in events}) == len(events)
    return {e["type"]: e for e in events}


def test_an_answered_voice_contact_gives_its_whole_story() -> None:
    events = by_type(RECORDS[0])
    assert set(events) == {"call.offered", "call.answered", "call.ended", "call.wrapup_ended"}
    assert events["call.offered"]["caller"] == "+447700900123"
    assert events["call.offered"]["channel"] == "voice"
    assert events["call.answered"]["wait_s"] == 18  # Queue.Duration
    assert (events["call.ended"]["talk_s"], events["call.ended"]["hold_s"]) == (210, 25)
    assert events["call.wrapup_ended"]["acw_s"] == 30
    # Each at the time it happened, in epoch seconds.
    assert events["call.offered"]["ts"] == 1709283625  # EnqueueTimestamp 09:00:25Z
    assert events["call.ended"]["ts"] == 1709283878  # AfterContactWorkStartTimestamp


CASES = [
    # abandoned in queue: the customer hung up
    (1, {"call.offered", "call.abandoned"}),
    # transferred by the agent: counted as a transfer, and the agent's part ended
    (3, {"call.offered", "call.answered", "call.ended", "call.wrapup_ended", "call.transferred"}),
    # a chat contact
    (4, {"call.offered", "call.answered", "call.ended", "call.wrapup_ended"}),
    # the flow disconnected it after a queue timeout: exited, not abandoned
    (5, {"call.offered", "call.exited"}),
]


@pytest.mark.parametrize(("index", "types"), CASES)
def test_contact_outcomes(index: int, types: set[str]) -> None:
    assert set(by_type(RECORDS[index])) == types


def test_outcome_details() -> None:
    assert by_type(RECORDS[5])["call.exited"]["reason"] == "timeout"
    assert by_type(RECORDS[3])["call.transferred"]["to_agent"] == "+442079460999"
    assert by_type(RECORDS[4])["call.offered"]["channel"] == "chat"
    transferred_on = RECORDS[1] | {"NextContactId": "c-2", "DisconnectReason": "OTHER"}
    assert by_type(transferred_on)["call.exited"]["reason"] == "overflow"


def test_a_contact_that_never_queued_is_skipped() -> None:
    assert map_record(RECORDS[2]) == Skipped("not_queued")


def test_a_transferred_contact_keeps_the_initial_call_id() -> None:
    second_leg = RECORDS[1] | {"ContactId": "leg-2", "InitialContactId": "leg-1"}
    events = map_record(second_leg)
    assert {e["call_id"] for e in events} == {"leg-1"}  # type: ignore[union-attr]


def test_a_record_delivered_again_has_the_same_ids() -> None:
    updated = RECORDS[0] | {"LastUpdateTimestamp": "2024-03-02T00:00:00Z", "Attributes": {}}
    first, again = map_record(RECORDS[0]), map_record(updated)
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]  # type: ignore[union-attr]


REFUSED = [
    ({"Queue": {"Name": "Billing"}}, "ContactId"),  # no contact id
    ({"ContactId": "c", "Queue": {"EnqueueTimestamp": "2024-03-01T09:00:00Z"}}, "Queue.Name"),
    ({"ContactId": "c", "Queue": {"Name": "Billing"}}, "EnqueueTimestamp"),  # no enqueue time
    ({"ContactId": "c", "Queue": "Billing"}, "must be an object"),  # a queue name, not object
    (
        RECORDS[0] | {"Agent": RECORDS[0]["Agent"] | {"AgentInteractionDuration": None}},
        "Interaction",
    ),
    (RECORDS[0] | {"Agent": RECORDS[0]["Agent"] | {"Username": None, "ARN": None}}, "Username"),
    (
        RECORDS[1]
        | {"DisconnectTimestamp": None, "Queue": RECORDS[1]["Queue"] | {"DequeueTimestamp": None}},
        "DequeueTimestamp",
    ),
    ([1, 2], "JSON object"),  # not a record
]


@pytest.mark.parametrize(("record", "problem"), REFUSED)
def test_incomplete_records_are_refused(record: object, problem: str) -> None:
    with pytest.raises(Unmappable, match=problem):
        map_record(record)


def encoded(record: object) -> str:
    return base64.b64encode(json.dumps(record).encode() + b"\n").decode()


def test_envelopes_and_framings_give_the_same_records() -> None:
    firehose = {
        "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
        "timestamp": 1709284000000,
        "records": [{"data": encoded(r)} for r in RECORDS[:2]] + [{"data": "!!"}],
    }
    kinesis = {"Records": [{"kinesis": {"data": encoded(RECORDS[0])}}]}
    concatenated = "".join(json.dumps(r) for r in RECORDS[:2]).encode()  # S3 objects: {..}{..}
    assert [d for _, d in unwrap(json_documents(json.dumps(firehose).encode()))][:2] == RECORDS[:2]
    assert isinstance(unwrap(json_documents(json.dumps(firehose).encode()))[2][1], Unmappable)
    assert [d for _, d in unwrap(json_documents(json.dumps(kinesis).encode()))] == RECORDS[:1]
    assert [d for _, d in json_documents(concatenated)] == RECORDS[:2]
    assert [d for _, d in json_documents(FIXTURE.read_bytes())] == RECORDS


def test_ndjson_keeps_its_good_lines_around_a_bad_one() -> None:
    body = b'{"a": 1}\n{"broken\n{"b": 2}\n'
    documents = json_documents(body)
    assert [d for _, d in documents if not isinstance(d, Unmappable)] == [{"a": 1}, {"b": 2}]
    assert [i for i, d in documents if isinstance(d, Unmappable)] == [1]


def test_the_fixture_as_a_whole() -> None:
    counts: Counter[str] = Counter()
    for record in RECORDS:
        mapped = map_record(record)
        counts.update(["skipped"] if isinstance(mapped, Skipped) else [e["type"] for e in mapped])
    assert counts == {
        "call.offered": 5,
        "call.answered": 3,
        "call.ended": 3,
        "call.wrapup_ended": 3,
        "call.abandoned": 1,
        "call.exited": 1,
        "call.transferred": 1,
        "skipped": 1,
    }
