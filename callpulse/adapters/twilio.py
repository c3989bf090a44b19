"""Twilio TaskRouter event callbacks to contract events.

A Workspace's EventCallbackUrl receives one form-encoded (or JSON) callback per event with
``Sid``, ``EventType``, ``Timestamp``/``TimestampMs`` and the Task, TaskQueue, Reservation and
Worker fields of the event. Event Streams' CloudEvents (``data.payload`` in snake_case) are
accepted too and read as the same fields.

    task.created (with a queue), task-queue.entered   -> call.offered
    reservation.accepted                              -> call.answered, wait = TaskAge
    task.canceled                                     -> call.abandoned, wait = TaskAge
                                                         (call.exited/timeout for TTL or
                                                         workflow timeouts)
    task-queue.timeout                                -> call.exited (timeout)
    reservation.wrapup, task.wrapup                   -> call.ended, talk = wrapup - accept
    reservation.completed, task.completed             -> call.wrapup_ended (acw = completed -
                                                         wrapup), or call.ended without wrapup
    worker.activity.update                            -> agent.state (activity name mapping)

Talk and wrap-up times are differences between callbacks of the same task, so a timeline of
open tasks is kept in memory: point TaskRouter at one API process (or route by TaskSid). A
wrap-up whose accept was never seen is skipped and counted (``awaiting_accept``). Event ids
derive from the TaskSid (or the Reservation's, per agent) and the kind, so a redelivered or
doubled callback (task.* and reservation.* both) counts once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callpulse.adapters.core import (
    Event,
    Mapped,
    Skipped,
    Unmappable,
    epoch_seconds,
    event_id,
    require_text,
    seconds,
)

DEFAULT_ACTIVITY_STATES = {
    "available": "available",
    "idle": "available",
    "offline": "logged_out",
    "unavailable": "paused",
    "break": "paused",
    "lunch": "paused",
    "busy": "on_call",
    "on a task": "on_call",
    "wrap up": "acw",
    "wrapup": "acw",
    "wrap-up": "acw",
}
CHANNELS = {
    "voice": "voice",
    "chat": "chat",
    "sms": "chat",
    "whatsapp": "chat",
    "messenger": "chat",
    "email": "email",
    "callback": "callback",
}
TIMEOUT_WORDS = ("timeout", "timed out", "ttl")
AGENT_STATES = frozenset({"logged_out", "available", "on_call", "acw", "paused"})


@dataclass(frozen=True)
class TwilioConfig:
    activity_states: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ACTIVITY_STATES)
    agent_field: str = "WorkerName"  # or WorkerSid: names read better, sids never change
    worker_queues_attribute: str | None = None  # dotted path in WorkerAttributes, e.g. skills


@dataclass
class TaskRecord:
    queue: str | None = None
    agent: str | None = None
    reservation: str | None = None
    accepted_s: float | None = None
    wrapup_s: float | None = None
    completed_s: float | None = None


class TaskTimeline:
    """Open tasks' accept, wrap-up and completion times; the oldest are forgotten first."""

    def __init__(self, max_tasks: int = 50_000) -> None:
        self.max_tasks = max_tasks
        self.tasks: OrderedDict[str, TaskRecord] = OrderedDict()

    def record(self, task_sid: str) -> TaskRecord:
        found = self.tasks.pop(task_sid, None) or TaskRecord()
        self.tasks[task_sid] = found
        while len(self.tasks) > self.max_tasks:
            self.tasks.popitem(last=False)
        return found


def normalise(payload: object) -> dict[str, Any]:
    """A callback's fields, whether form, JSON callback or Event Streams CloudEvent."""
    if not isinstance(payload, dict):
        raise Unmappable("a TaskRouter callback is an object of fields")
    data = payload.get("data")
    cloud_event = "specversion" in payload and isinstance(data, dict)
    if cloud_event and isinstance(data, dict) and isinstance(data.get("payload"), dict):
        return {_camel(key): value for key, value in data["payload"].items()}
    return payload


def _camel(key: str) -> str:
    special = {"eventtype": "EventType", "sid": "Sid"}
    return special.get(key, "".join(part.capitalize() for part in key.split("_")))


def map_callback(payload: object, timeline: TaskTimeline, config: TwilioConfig) -> Mapped:
    fields = normalise(payload)
    kind = require_text(fields, "EventType")
    handler = _HANDLERS.get(kind)
    if handler is None:
        return Skipped(kind)  # TaskRouter has dozens of events; these carry no KPI
    return handler(_Callback(fields, config), timeline)


class _Callback:
    def __init__(self, fields: dict[str, Any], config: TwilioConfig) -> None:
        self.fields, self.config = fields, config
        self.sid = str(fields.get("Sid") or fields.get("EventSid") or "")
        if not self.sid:
            raise Unmappable("field 'Sid' (the event's EV... sid) is required")
        if fields.get("TimestampMs") not in (None, ""):
            self.ts = epoch_seconds(fields["TimestampMs"], "TimestampMs", unit_s=0.001)
        elif fields.get("Timestamp") not in (None, ""):
            self.ts = epoch_seconds(fields["Timestamp"], "Timestamp")
        else:
            raise Unmappable("field 'Timestamp' (or 'TimestampMs') is required")

    @property
    def task(self) -> str:
        return require_text(self.fields, "TaskSid")

    @property
    def queue(self) -> str:
        name = self.fields.get("TaskQueueName") or self.fields.get("TaskQueueSid")
        if not isinstance(name, str) or not name:
            raise Unmappable("field 'TaskQueueName' (or 'TaskQueueSid') is required")
        return name

    @property
    def agent(self) -> str:
        chosen = self.fields.get(self.config.agent_field) or self.fields.get("WorkerSid")
        if not isinstance(chosen, str) or not chosen:
            raise Unmappable(f"field '{self.config.agent_field}' (or 'WorkerSid') is required")
        return chosen

    def age_s(self) -> float:
        return seconds(self.fields.get("TaskAge"), "TaskAge")

    def attributes(self, name: str) -> dict[str, Any]:
        text = self.fields.get(name)
        if text in (None, ""):
            return {}
        try:
            parsed = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError:
            raise Unmappable(f"field '{name}' must hold JSON attributes") from None
        if not isinstance(parsed, dict):
            raise Unmappable(f"field '{name}' must hold a JSON object")
        return parsed

    def call(self, kind: str, queue: str | None = None) -> Event:
        chosen = queue or self.queue
        return {
            "event_id": event_id("twilio", self.task, chosen, kind),
            "type": f"call.{kind}",
            "ts": self.ts,
            "queue": chosen,
            "call_id": self.task,
        }


def _offered(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    has_queue = callback.fields.get("TaskQueueName") or callback.fields.get("TaskQueueSid")
    if callback.fields.get("EventType") == "task.created" and not has_queue:
        return Skipped("task.created before routing")  # task-queue.entered brings the queue
    event = callback.call("offered")
    attributes = callback.attributes("TaskAttributes")
    caller = attributes.get("from") or attributes.get("caller")
    if isinstance(caller, str) and caller:
        event["caller"] = caller  # pseudonymised before publishing
    channel = CHANNELS.get(str(callback.fields.get("TaskChannelUniqueName", "")).lower())
    if channel:
        event["channel"] = channel
    return [event]


def _canceled(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    reason = str(callback.fields.get("TaskCanceledReason", "")).lower()
    if any(word in reason for word in TIMEOUT_WORDS):
        return _exited(callback, timeline)
    return [{**callback.call("abandoned"), "wait_s": callback.age_s()}]


def _exited(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    return [{**callback.call("exited"), "reason": "timeout", "wait_s": callback.age_s()}]


def _accepted(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    task = timeline.record(callback.task)
    task.queue, task.agent = callback.queue, callback.agent
    task.reservation = str(callback.fields.get("ReservationSid") or callback.task)
    task.accepted_s = callback.ts
    answered = {**callback.call("answered"), "agent_id": task.agent, "wait_s": callback.age_s()}
    return [answered, *_handled(callback.task, task)]


def _wrapup(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    task = timeline.record(callback.task)
    task.wrapup_s = task.wrapup_s or callback.ts
    if task.accepted_s is None:
        return Skipped("awaiting_accept")
    return [event for event in _handled(callback.task, task) if event["type"] == "call.ended"]


def _completed(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    task = timeline.record(callback.task)
    task.completed_s = task.completed_s or callback.ts
    if task.accepted_s is None:
        return Skipped("awaiting_accept")
    events = _handled(callback.task, task)
    return [e for e in events if e["type"] == "call.wrapup_ended"] or events


def _handled(task_sid: str, task: TaskRecord) -> list[Event]:
    """The ended and wrap-up events the task's known times allow."""
    if task.accepted_s is None or task.queue is None or task.agent is None:
        return []
    end_s = task.wrapup_s if task.wrapup_s is not None else task.completed_s
    if end_s is None:
        return []
    reservation = task.reservation or task_sid
    common = {"queue": task.queue, "call_id": task_sid, "agent_id": task.agent}
    events: list[Event] = [
        {
            "event_id": event_id("twilio", reservation, "ended"),
            "type": "call.ended",
            "ts": end_s,
            **common,
            "talk_s": round(max(0.0, end_s - task.accepted_s), 3),
        }
    ]
    if task.wrapup_s is not None and task.completed_s is not None:
        events.append(
            {
                "event_id": event_id("twilio", reservation, "wrapup_ended"),
                "type": "call.wrapup_ended",
                "ts": task.completed_s,
                **common,
                "acw_s": round(max(0.0, task.completed_s - task.wrapup_s), 3),
            }
        )
    return events


def _activity(callback: _Callback, timeline: TaskTimeline) -> Mapped:
    name = require_text(callback.fields, "WorkerActivityName")
    state = callback.config.activity_states.get(name.lower())
    if state is None:
        raise Unmappable(
            f"activity {name!r} has no agent state: add it under twilio.activity_states "
            "in the adapters configuration"
        )
    event: Event = {
        "event_id": f"twilio:{callback.sid}",
        "type": "agent.state",
        "ts": callback.ts,
        "agent_id": callback.agent,
        "state": state,
    }
    queues = _worker_queues(callback)
    if queues:
        event["queues"] = queues
    return [event]


def _worker_queues(callback: _Callback) -> list[str]:
    path = callback.config.worker_queues_attribute
    if not path:
        return []
    value: Any = callback.attributes("WorkerAttributes")
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


_HANDLERS = {
    "task.created": _offered,
    "task-queue.entered": _offered,
    "task.canceled": _canceled,
    "task-queue.timeout": _exited,
    "reservation.accepted": _accepted,
    "reservation.wrapup": _wrapup,
    "task.wrapup": _wrapup,
    "reservation.completed": _completed,
    "task.completed": _completed,
    "worker.activity.update": _activity,
}


def activity_states(overrides: Mapping[str, str]) -> dict[str, str]:
    """The default activity mapping with ``overrides`` (case-insensitive names) on top."""
    merged = dict(DEFAULT_ACTIVITY_STATES)
    for name, state in overrides.items():
        if state not in AGENT_STATES:
            raise ValueError(
                f"twilio.activity_states: {name!r} -> {state!r} is not an agent state "
                f"({', '.join(sorted(AGENT_STATES))})"
            )
        merged[name.lower()] = state
    return merged
