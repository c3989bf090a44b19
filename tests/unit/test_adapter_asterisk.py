"""Asterisk queue_log lines to contract events, across the versions' field layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callpulse.adapters.asterisk import QueueLogMapper, parse_line, scrub_line
from callpulse.adapters.core import Gate, IngestStats, Refusal, Skipped, Unmappable
from stream.validation import EventValidator

DATA = Path(__file__).parents[1] / "data" / "asterisk"
T = 1709283700  # 2024-03-01T09:01:40Z


def only_call_event(mapped: object) -> dict[str, Any]:
    assert isinstance(mapped, list)
    calls = [e for e in mapped if e["type"] != "agent.state"]
    assert len(calls) == 1, calls
    return calls[0]


def without_id(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "event_id"}


CALL_LINES = [
    # 13+: url|callerid|position; the caller id goes out as `caller` (pseudonymised later)
    (
        f"{T}|1.1|sales|NONE|ENTERQUEUE||+442079460101|3",
        {"type": "call.offered", "caller": "+442079460101"},
    ),
    # 1.4: url|callerid, a screen-pop URL and no position
    (
        f"{T}|1.1|helpdesk|NONE|ENTERQUEUE|http://crm/pop?id=8|2125550199",
        {"type": "call.offered", "queue": "helpdesk", "caller": "2125550199"},
    ),
    # withheld caller id: no `caller` at all, never an empty one
    (f"{T}|1.1|sales|NONE|ENTERQUEUE|||1", {"type": "call.offered"}),
    # 1.6+: holdtime|bridged uniqueid|ringtime; holdtime is the wait in the queue
    (
        f"{T}|1.1|sales|Alice Martin|CONNECT|20|1709283700.13|4",
        {"type": "call.answered", "agent_id": "Alice Martin", "wait_s": 20},
    ),
    # 1.4: holdtime|bridged uniqueid (two fields); chan_agent member
    (
        f"{T}|1.1|helpdesk|Agent/1001|CONNECT|7|1209632478.15",
        {"type": "call.answered", "queue": "helpdesk", "agent_id": "Agent/1001", "wait_s": 7},
    ),
    # 1.2: holdtime only; a Local channel member keeps its full name
    (
        f"{T}|1.1|sales|Local/2003@from-queue/n|CONNECT|0",
        {"type": "call.answered", "agent_id": "Local/2003@from-queue/n", "wait_s": 0},
    ),
    # position|origposition|waittime
    (f"{T}|1.1|sales|NONE|ABANDON|1|2|70", {"type": "call.abandoned", "wait_s": 70}),
    # waited 0 s: an instant abandon is still an abandon
    (f"{T}|1.1|sales|NONE|ABANDON|1|1|0", {"type": "call.abandoned", "wait_s": 0}),
    (
        f"{T}|1.1|sales|NONE|EXITWITHTIMEOUT|1|1|90",
        {"type": "call.exited", "reason": "timeout", "wait_s": 90},
    ),
    # before 1.6 only the position: no wait_s, the worker derives it from the offer
    (f"{T}|1.1|sales|NONE|EXITWITHTIMEOUT|1", {"type": "call.exited", "reason": "timeout"}),
    # key|position|origposition|waittime: the wait is the 4th field here
    (
        f"{T}|1.1|sales|NONE|EXITWITHKEY|1|2|2|20",
        {"type": "call.exited", "reason": "key", "wait_s": 20},
    ),
    # 1.4: key|position
    (f"{T}|1.1|sales|NONE|EXITWITHKEY|0|1", {"type": "call.exited", "reason": "key"}),
    (
        f"{T}|1.1|sales|NONE|EXITEMPTY|1|1|2",
        {"type": "call.exited", "reason": "empty", "wait_s": 2},
    ),
    # holdtime|calltime|origposition: talk is data2, the queue wait is not hold_s
    (
        f"{T}|1.1|sales|Bob Chen|COMPLETECALLER|20|43|1",
        {"type": "call.ended", "agent_id": "Bob Chen", "talk_s": 43},
    ),
    (
        f"{T}|1.1|sales|Bob Chen|COMPLETEAGENT|20|0|1",  # a zero-second call
        {"type": "call.ended", "agent_id": "Bob Chen", "talk_s": 0},
    ),
]


@pytest.mark.parametrize(("line", "expected"), CALL_LINES)
def test_call_lines(line: str, expected: dict[str, Any]) -> None:
    event = only_call_event(QueueLogMapper().map(line.encode()))
    assert without_id(event) == {"ts": T, "queue": "sales", "call_id": "1.1", **expected}
    assert event["event_id"].startswith("ast:")


TRANSFERS = [
    # 12+: exten|context|holdtime|calltime|origposition
    (
        f"{T}|1.1|sales|PJSIP/2004|BLINDTRANSFER|2005|from-internal|27|138|1",
        "2005@from-internal",
        138,
    ),
    # 1.4: exten|context|holdtime|calltime
    (f"{T}|1.1|sales|Agent/1002|TRANSFER|3002|from-internal|24|164", "3002@from-internal", 164),
    # 1.6+: TRANSFER with origposition
    (f"{T}|1.1|sales|SIP/202|TRANSFER|2100|from-internal|6|168|1", "2100@from-internal", 168),
    # attended, bridges merged: BRIDGE|bridge id|holdtime|calltime|origposition
    (
        f"{T}|1.1|sales|PJSIP/2004|ATTENDEDTRANSFER|BRIDGE|5c7a2f3e|20|185|2",
        "BRIDGE:5c7a2f3e",
        185,
    ),
    # attended into an application
    (f"{T}|1.1|sales|Alice|ATTENDEDTRANSFER|APP|VoiceMail|19|166|1", "APP:VoiceMail", 166),
    # attended by linking two bridges: two channel fields, so count times from the end
    (
        f"{T}|1.1|sales|Bob|ATTENDEDTRANSFER|LINK|Local/2005@x-1a;1|Local/2005@x-1a;2|19|140|1",
        "LINK:Local/2005@x-1a;1:Local/2005@x-1a;2",
        140,
    ),
]


@pytest.mark.parametrize(("line", "destination", "talk_s"), TRANSFERS)
def test_transfers_end_the_members_call(line: str, destination: str, talk_s: int) -> None:
    mapped = QueueLogMapper().map(line.encode())
    assert isinstance(mapped, list)
    by_type = {e["type"]: e for e in mapped}
    assert by_type["call.transferred"]["to_agent"] == destination
    # Asterisk logs no COMPLETE after a transfer: the transfer line is the end of the talk.
    assert by_type["call.ended"]["talk_s"] == talk_s
    assert by_type["agent.state"]["state"] == "available"
    assert len({e["event_id"] for e in mapped}) == 3


def test_asterisk_1_2_transfer_has_no_call_time_so_no_end() -> None:
    mapped = QueueLogMapper().map(f"{T}|1.1|sales|SIP/201|TRANSFER|200|default".encode())
    assert [e["type"] for e in mapped] == ["call.transferred"]  # type: ignore[union-attr]


REFUSED = [
    ("1709283700|1.1|sales|ENTERQUEUE", "at least 5"),  # a field short
    ("yesterday|1.1|sales|NONE|ENTERQUEUE||1|1", "epoch seconds"),  # time not epoch
    ("0|1.1|sales|NONE|ENTERQUEUE||1|1", "plausible"),  # epoch 0: a broken clock
    (f"{T}|1.1|NONE|NONE|ENTERQUEUE||1|1", "needs a queue"),  # a call event without queue
    (f"{T}|NONE|sales|NONE|ABANDON|1|1|3", "needs a call id"),  # without uniqueid
    (f"{T}|1.1|sales|NONE|CONNECT|20|x|1", "queue member"),  # answered by nobody
    (f"{T}|1.1|sales|Bob|CONNECT|||", "holdtime"),  # CONNECT without its holdtime
    (f"{T}|1.1|sales|Bob|CONNECT|-3|x|1", "negative"),  # a negative wait
    (f"{T}|1.1|sales|Bob|COMPLETECALLER|20|long|1", "number"),  # talk time not a number
    (f"{T}|1.1|sales|Bob|ATTENDEDTRANSFER|BRIDGE|20|1", "ATTENDEDTRANSFER needs"),  # truncated
    (f"{T}||sales|NONE|ADDMEMBER|", "queue member"),  # member event without member
    (f"{T}|MANAGER|NONE|SIP/201|ADDMEMBER|", "the queue"),  # joined no queue
]


@pytest.mark.parametrize(("line", "problem"), REFUSED)
def test_malformed_lines_are_refused_whole(line: str, problem: str) -> None:
    mapper = QueueLogMapper()
    with pytest.raises(Unmappable, match=problem):
        mapper.map(line.encode())
    assert mapper.roster.members == {}  # a refused line teaches the roster nothing


@pytest.mark.parametrize(
    "event",
    [
        "RINGNOANSWER|15000",  # a member did not pick up: no contract field for it
        "RINGCANCELED|4000",  # the caller hung up while this member rang
        "DID|02079460000",  # FreePBX's own line
        "INFO|anything",  # a custom QueueLog() event
        "SYSCOMPAT",  # no trailing data at all
    ],
)
def test_other_events_are_skipped_by_name(event: str) -> None:
    mapped = QueueLogMapper().map(f"{T}|1.1|sales|SIP/201|{event}".encode())
    assert mapped == Skipped(event.split("|")[0])


def test_event_ids_come_from_the_line_bytes() -> None:
    line = f"{T}|1.1|sales|Bob|COMPLETECALLER|20|43|1".encode()
    first, again = QueueLogMapper().map(line), QueueLogMapper().map(line)
    other = QueueLogMapper().map(line.replace(b"|43|", b"|44|"))
    ids = [e["event_id"] for e in first]  # type: ignore[union-attr]
    assert ids == [e["event_id"] for e in again]  # type: ignore[union-attr]
    assert not set(ids) & {e["event_id"] for e in other}  # type: ignore[union-attr]
    # A CRLF file (copied through Windows) is the same line.
    crlf = QueueLogMapper().map(line + b"\r")
    assert ids == [e["event_id"] for e in crlf]  # type: ignore[union-attr]


def states(lines: list[str], mapper: QueueLogMapper | None = None) -> list[tuple[Any, ...]]:
    mapper = mapper or QueueLogMapper()
    out = []
    for line in lines:
        mapped = mapper.map(line.encode())
        assert isinstance(mapped, list)
        out += [
            (e["ts"], e["state"], tuple(e.get("queues", ())))
            for e in mapped
            if e["type"] == "agent.state"
        ]
    return out


def test_a_member_of_two_queues_counts_in_both() -> None:
    # Two ADDMEMBER lines in one second: the second lists both queues and is 1 ms later,
    # so "latest state wins" picks it whatever the event ids' order.
    assert states(
        [
            f"{T}|MANAGER|sales|Alice|ADDMEMBER|",
            f"{T}|MANAGER|support|Alice|ADDMEMBER|",
            f"{T + 5}|NONE|sales|Alice|PAUSE|Lunch",
            f"{T + 9}|MANAGER|sales|Alice|REMOVEMEMBER|",
            f"{T + 12}|MANAGER|support|Alice|REMOVEMEMBER|",
        ]
    ) == [
        (T, "available", ("sales",)),
        (T + 0.001, "available", ("sales", "support")),
        (T + 5, "paused", ("sales", "support")),  # one state per agent: the pause wins
        (T + 9, "paused", ("support",)),  # still in support
        (T + 12, "logged_out", ("support",)),  # out of every queue: shown where it left
    ]


def test_calls_put_the_member_on_call_and_back_to_its_own_state() -> None:
    assert states(
        [
            f"{T}|MANAGER|sales|Bob|ADDMEMBER|PAUSED",  # added paused (AMI Paused: true)
            f"{T + 1}|NONE|sales|Bob|UNPAUSE|",
            f"{T + 2}|1.1|sales|Bob|CONNECT|5|1.2|1",
            f"{T + 3}|NONE|sales|Bob|PAUSE|Break",  # paused during the call: still on it
            f"{T + 9}|1.1|sales|Bob|COMPLETEAGENT|5|7|1",
        ]
    ) == [
        (T, "paused", ("sales",)),
        (T + 1, "available", ("sales",)),
        (T + 2, "on_call", ("sales",)),
        (T + 3, "on_call", ("sales",)),
        (T + 9, "paused", ("sales",)),  # the pause taken during the call shows after it
    ]


def test_channel_agents_log_in_and_off_without_a_queue() -> None:
    mapper = QueueLogMapper()
    mapper.map(f"{T}|1.1|helpdesk|Agent/1001|CONNECT|7|1.2".encode())
    assert states(
        [
            f"{T + 1}|1.1|helpdesk|Agent/1001|COMPLETECALLER|7|112|1",
            f"{T + 5}|1.3|NONE|Agent/1001|AGENTLOGOFF|SIP/1001-081d9a38|895",
            f"{T + 9}|1.4|NONE|Agent/1001|AGENTCALLBACKLOGIN|1001@from-internal",
        ],
        mapper,
    ) == [
        (T + 1, "available", ("helpdesk",)),
        (T + 5, "logged_out", ("helpdesk",)),  # its queues see it logged out
        (T + 9, "available", ("helpdesk",)),
    ]


def test_aliases_join_interface_and_member_name() -> None:
    # Without log_membername_as_agent, ADDMEMBER logs the interface and CONNECT the name.
    mapper = QueueLogMapper(aliases={"PJSIP/2001": "Alice"})
    added = mapper.map(f"{T}|MANAGER|sales|PJSIP/2001|ADDMEMBER|".encode())
    assert added[0]["agent_id"] == "Alice"  # type: ignore[index]


def test_the_snapshot_tells_each_agents_state() -> None:
    mapper = QueueLogMapper()
    mapper.map(f"{T}|MANAGER|sales|Alice|ADDMEMBER|".encode())
    mapper.map(f"{T}|MANAGER|sales|Bob|ADDMEMBER|PAUSED".encode())
    snapshot = mapper.snapshot_events(T + 100)
    assert [(e["agent_id"], e["state"], e["ts"]) for e in snapshot] == [
        ("Alice", "available", T + 100),
        ("Bob", "paused", T + 100),
    ]
    # Deterministic: the same roster at the same --from gives the same ids.
    assert [e["event_id"] for e in snapshot] == [
        e["event_id"] for e in mapper.snapshot_events(T + 100)
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # version: counts by contract type, and skipped lines by event
        (
            "asterisk-1.4",
            {
                "types": {
                    "call.offered": 7,
                    "call.answered": 3,
                    "call.ended": 3,
                    "call.abandoned": 1,
                    "call.exited": 3,
                    "call.transferred": 1,
                    "agent.state": 10,
                },
                "skipped": {"QUEUESTART": 1},
            },
        ),
        (
            "asterisk-1.8",
            {
                "types": {
                    "call.offered": 6,
                    "call.answered": 3,
                    "call.ended": 3,
                    "call.abandoned": 1,
                    "call.exited": 2,
                    "call.transferred": 1,
                    "agent.state": 13,
                },
                "skipped": {
                    "CONFIGRELOAD": 1,
                    "PAUSEALL": 1,
                    "QUEUESTART": 1,
                    "RINGCANCELED": 1,
                    "RINGNOANSWER": 1,
                    "UNPAUSEALL": 1,
                },
            },
        ),
    ],
)
def test_whole_files_of_each_version(name: str, expected: dict[str, Any]) -> None:
    events, stats = map_file(DATA / f"{name}.queue_log")
    assert not stats.refused
    assert dict(Counter(e["type"] for e in events)) == expected["types"]
    assert dict(stats.skipped) == expected["skipped"]


def test_asterisk_18_file_matches_its_own_line_counts() -> None:
    path = DATA / "asterisk-18.queue_log"
    events, stats = map_file(path)
    fields = [line.split("|") for line in path.read_text().splitlines()]
    count = Counter(f[4] for f in fields)
    types = Counter(e["type"] for e in events)
    assert not stats.refused
    assert types["call.offered"] == count["ENTERQUEUE"]
    assert types["call.answered"] == count["CONNECT"]
    assert types["call.abandoned"] == count["ABANDON"]
    exits = count["EXITWITHTIMEOUT"] + count["EXITWITHKEY"] + count["EXITEMPTY"]
    assert types["call.exited"] == exits
    transfers = count["BLINDTRANSFER"] + count["ATTENDEDTRANSFER"]
    assert types["call.transferred"] == transfers
    assert types["call.ended"] == count["COMPLETECALLER"] + count["COMPLETEAGENT"] + transfers
    assert stats.skipped["DID"] == count["DID"]


def map_file(path: Path) -> tuple[list[dict[str, Any]], IngestStats]:
    lines = path.read_bytes().splitlines()
    now = int(lines[-1].split(b"|")[0]) + 60
    gate, mapper, stats = Gate(EventValidator(), clock=lambda: now), QueueLogMapper(), IngestStats()
    events: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        outcome = gate.admit(lambda raw=raw: mapper.map(raw), index=number)  # type: ignore[misc]
        stats.count(outcome)
        if isinstance(outcome, list):
            events += outcome
    return events, stats


def test_an_event_the_contract_refuses_refuses_the_whole_line() -> None:
    # An agent name longer than the contract allows: the answered event is invalid, so
    # neither it nor the agent's state is published.
    line = f"{T}|1.1|sales|{'x' * 300}|CONNECT|5|1.2|1".encode()
    outcome = Gate(EventValidator(), clock=lambda: T).admit(lambda: QueueLogMapper().map(line))
    assert isinstance(outcome, Refusal)
    assert outcome.reason == "invalid_value"
    assert len(outcome.problems) == 2  # both events named


def test_a_refused_line_is_shown_without_phone_numbers() -> None:
    raw = b"1709283700|1709283700.12|sales|NONE|ENTERQUEUE|x|+442079460101|oops|1"
    shown = scrub_line(raw, lambda number: f"<{len(number)}>")
    assert shown == "1709283700|1709283700.12|sales|NONE|ENTERQUEUE|x|<13>|oops|1"


def test_parse_keeps_the_fields_as_written() -> None:
    line = parse_line(b"1709283700.5|MANAGER|sales|SIP/201|addmember|PAUSED")
    assert (line.time_s, line.callid, line.agent, line.event, line.data) == (
        1709283700.5,
        "MANAGER",
        "SIP/201",
        "ADDMEMBER",  # event names are compared upper-case
        ("PAUSED",),
    )
