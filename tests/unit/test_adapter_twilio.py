"""Twilio TaskRouter callbacks to contract events: fixtures shaped like the real callbacks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callpulse.adapters.config import AdaptersConfig
from callpulse.adapters.core import Gate, IngestStats, Skipped, Unmappable, split_outcomes
from callpulse.adapters.payloads import AdapterContext, admit_all, body_documents, inputs_of
from callpulse.adapters.twilio import TaskTimeline, TwilioConfig, activity_states, map_callback
from stream.validation import EventValidator

FIXTURE = Path(__file__).parents[1] / "data" / "twilio" / "taskrouter-callbacks.ndjson"
T_MS = 1709283700000
CONFIG = TwilioConfig()


def callback(event: str, at_s: float = 0, **fields: str) -> dict[str, str]:
    base = {
        "Sid": f"EV{event.replace('.', '')[:8]:0<8}{int(at_s):024d}",
        "EventType": event,
        "Timestamp": str((T_MS + int(at_s * 1000)) // 1000),
        "TimestampMs": str(T_MS + int(at_s * 1000)),
        "TaskSid": "WT0001",
        "TaskQueueName": "Sales",
        "TaskAge": "0",
        "WorkerName": "Alice Martin",
        "WorkerSid": "WK0001",
        "ReservationSid": "WR0001",
    }
    return base | fields


def mapped(payload: dict[str, Any], timeline: TaskTimeline | None = None) -> Any:
    return map_callback(payload, timeline or TaskTimeline(), CONFIG)


SINGLE = [
    # queue entry: offered, with the caller from the task's attributes and its channel
    (
        callback(
            "task-queue.entered",
            TaskAttributes=json.dumps({"from": "+14155550123"}),
            TaskChannelUniqueName="voice",
        ),
        {"type": "call.offered", "caller": "+14155550123", "channel": "voice"},
    ),
    # created already routed (a queue in the callback): offered as well
    (callback("task.created"), {"type": "call.offered"}),
    # an SMS task is a chat contact
    (
        callback("task.created", TaskChannelUniqueName="sms"),
        {"type": "call.offered", "channel": "chat"},
    ),
    # hang-up in queue: abandoned, the wait is the task's age
    (
        callback("task.canceled", TaskAge="35", TaskCanceledReason="hangup"),
        {"type": "call.abandoned", "wait_s": 35},
    ),
    # the task's TTL ran out: it did not abandon, it timed out
    (
        callback("task.canceled", TaskAge="300", TaskCanceledReason="Task TTL Exceeded"),
        {"type": "call.exited", "reason": "timeout", "wait_s": 300},
    ),
    # a workflow step timed out of this queue
    (
        callback("task-queue.timeout", TaskAge="60"),
        {"type": "call.exited", "reason": "timeout", "wait_s": 60},
    ),
    # TaskRouter Event Streams (CloudEvents, snake_case payload) read as the same fields
    (
        {
            "specversion": "1.0",
            "type": "com.twilio.taskrouter.task.canceled",
            "data": {
                "payload": {
                    "sid": "EV0000000000000000000000000000001",
                    "eventtype": "task.canceled",
                    "timestamp": "2024-03-01T09:01:40.000Z",
                    "task_sid": "WT0001",
                    "task_queue_name": "Sales",
                    "task_age": 12,
                    "task_canceled_reason": "hangup",
                }
            },
        },
        {"type": "call.abandoned", "wait_s": 12},
    ),
]


@pytest.mark.parametrize(("payload", "expected"), SINGLE)
def test_task_events(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    [event] = mapped(payload)
    assert {k: v for k, v in event.items() if k in expected} == expected
    assert (event["queue"], event["call_id"], event["ts"]) == ("Sales", "WT0001", 1709283700.0)


def test_talk_and_wrap_up_come_from_the_task_timeline() -> None:
    timeline = TaskTimeline()
    answered = mapped(callback("reservation.accepted", 0, TaskAge="14"), timeline)
    assert [(e["type"], e["agent_id"], e["wait_s"]) for e in answered] == [
        ("call.answered", "Alice Martin", 14)
    ]
    [ended] = mapped(callback("reservation.wrapup", 185), timeline)
    [again] = mapped(callback("task.wrapup", 185.04), timeline)  # both arrive: one ended
    assert (ended["talk_s"], ended["event_id"]) == (185, again["event_id"])
    [wrapup] = mapped(callback("reservation.completed", 217), timeline)
    assert (wrapup["type"], wrapup["acw_s"], wrapup["ts"]) == ("call.wrapup_ended", 32, 1709283917)


def test_callbacks_out_of_order_still_give_every_event() -> None:
    timeline = TaskTimeline()
    # The wrap-up overtook the accept (concurrent HTTP requests): it waits for it.
    assert mapped(callback("reservation.wrapup", 100), timeline) == Skipped("awaiting_accept")
    late = mapped(callback("reservation.accepted", 10, TaskAge="10"), timeline)
    assert [(e["type"], e.get("talk_s")) for e in late] == [
        ("call.answered", None),
        ("call.ended", 90),
    ]


def test_completed_without_wrap_up_ends_the_call() -> None:
    timeline = TaskTimeline()
    mapped(callback("reservation.accepted", 0), timeline)
    [ended] = mapped(callback("task.completed", 60), timeline)
    assert (ended["type"], ended["talk_s"]) == ("call.ended", 60)


def test_the_timeline_forgets_the_oldest_tasks() -> None:
    timeline = TaskTimeline(max_tasks=2)
    for task in ("WT1", "WT2", "WT3"):
        timeline.record(task)
    assert list(timeline.tasks) == ["WT2", "WT3"]


@pytest.mark.parametrize(
    ("activity", "state"),
    [
        ("Available", "available"),
        ("Offline", "logged_out"),
        ("break", "paused"),  # names are matched case-insensitively
        ("Training", "paused"),  # a configured name
    ],
)
def test_worker_activities_become_agent_states(activity: str, state: str) -> None:
    config = TwilioConfig(
        activity_states=activity_states({"Training": "paused"}),
        worker_queues_attribute="routing.skills",
    )
    payload = callback(
        "worker.activity.update",
        WorkerActivityName=activity,
        WorkerAttributes=json.dumps({"routing": {"skills": ["sales", "support"]}}),
    )
    [event] = map_callback(payload, TaskTimeline(), config)
    assert (event["state"], event["queues"], event["agent_id"]) == (
        state,
        ["sales", "support"],
        "Alice Martin",
    )
    assert event["event_id"] == f"twilio:{payload['Sid']}"


REFUSED = [
    ({"Sid": "EV1", "Timestamp": "1"}, "EventType"),  # not a TaskRouter callback
    (callback("task.canceled") | {"Sid": ""}, "Sid"),  # no event sid: no stable id
    (callback("task.canceled") | {"Timestamp": "", "TimestampMs": ""}, "Timestamp"),
    (callback("task.canceled") | {"TaskAge": "soon"}, "TaskAge"),  # age not a number
    (callback("task.canceled") | {"TaskQueueName": ""}, "TaskQueueName"),  # no queue
    (callback("worker.activity.update", WorkerActivityName="Gym"), "no agent state"),
    (callback("task.created", TaskAttributes="{broken"), "TaskAttributes"),
]


@pytest.mark.parametrize(("payload", "problem"), REFUSED)
def test_bad_callbacks_are_refused(payload: dict[str, str], problem: str) -> None:
    with pytest.raises(Unmappable, match=problem):
        mapped(payload)


def test_unused_event_types_are_skipped_by_name() -> None:
    assert mapped(callback("reservation.rejected")) == Skipped("reservation.rejected")


def test_bad_activity_mapping_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not an agent state"):
        activity_states({"Gym": "exercising"})


def test_the_exported_callbacks_fixture() -> None:
    body = FIXTURE.read_bytes()
    stats = IngestStats()
    context = AdapterContext(AdaptersConfig(), TaskTimeline())
    gate = Gate(EventValidator(), clock=lambda: 1709284600)
    outcomes = admit_all(
        inputs_of("twilio", body_documents(body, form=False), context), gate, stats
    )
    events, refusals = split_outcomes(outcomes)
    assert not refusals
    unique = {e["event_id"]: e for e in events}.values()  # task.* and reservation.* twins
    assert Counter(e["type"] for e in unique) == {
        "call.offered": 6,  # 5 tasks, one of them offered to two queues
        "call.answered": 3,
        "call.ended": 3,
        "call.wrapup_ended": 3,
        "call.abandoned": 1,
        "call.exited": 2,  # a workflow timeout and a TTL
        "agent.state": 5,
    }
    assert stats.skipped == {"task.created before routing": 5, "reservation.created": 2}


def test_form_encoded_callback_bodies() -> None:
    body = (
        b"Sid=EV1&EventType=task.canceled&Timestamp=1709283700&TaskSid=WT9"
        b"&TaskQueueName=Sales+EU&TaskAge=4"
    )
    [(_, fields)] = body_documents(body, form=True)
    [event] = mapped(fields)
    assert (event["queue"], event["wait_s"]) == ("Sales EU", 4)
