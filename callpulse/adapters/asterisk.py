"""Asterisk ``queue_log`` lines to contract events.

A line is ``time|callid|queue|agent|event|data1|data2|...`` as ``ast_queue_log`` writes it: epoch
seconds, the caller channel's uniqueid (``NONE``, ``MANAGER`` or ``CLI`` on member lines), the
queue (``NONE`` when none), the member name (``NONE`` on caller lines), the event, then the
event's own fields. Field positions differ across versions; those that matter here:

    ENTERQUEUE        url|callerid            (13+: url|callerid|position)
    CONNECT           holdtime                (1.2; 1.4: |bridged uniqueid; 1.6+: |ringtime)
    ABANDON, EXITEMPTY, EXITWITHTIMEOUT       position|origposition|waittime
                                              (EXITWITHTIMEOUT before 1.6: position only)
    EXITWITHKEY       key|position|origposition|waittime   (before 1.6: key|position)
    COMPLETECALLER, COMPLETEAGENT             holdtime|calltime|origposition
    TRANSFER          exten|context|holdtime|calltime[|origposition]   (1.2: exten|context)
    BLINDTRANSFER     exten|context|holdtime|calltime|origposition     (12+)
    ATTENDEDTRANSFER  BRIDGE|bridge, APP|app or LINK|chan1|chan2, then holdtime|calltime|origpos

Asterisk's "holdtime" is the wait in the queue (``wait_s``), not hold during the conversation.
A transfer ends the member's part of the call (Asterisk logs no COMPLETE after it), so it maps
to ``call.transferred`` and ``call.ended`` with the logged call time. Event ids are a hash of
the line's bytes plus the event kind: reading a line again gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from callpulse.adapters.asterisk_agents import AgentChange, AgentRoster
from callpulse.adapters.core import Event, Mapped, Skipped, Unmappable, event_id, seconds

NONE = "NONE"
MIN_FIELDS = 5
EXIT_REASONS = {"EXITWITHTIMEOUT": "timeout", "EXITWITHKEY": "key", "EXITEMPTY": "empty"}
# Index of the wait in each exit's data, when the version logs it.
EXIT_WAIT_INDEX = {"ABANDON": 2, "EXITWITHTIMEOUT": 2, "EXITEMPTY": 2, "EXITWITHKEY": 3}
PHONE_LIKE = re.compile(r"\+?\d{5,}")


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    time_s: int | float
    callid: str
    queue: str | None
    agent: str | None
    event: str
    data: tuple[str, ...]
    digest: str  # of the line's bytes: the source of its event ids

    def ids(self, kind: str) -> str:
        return f"ast:{self.digest}:{kind}"

    def call_fields(self) -> Event:
        if not self.queue:
            raise Unmappable(f"{self.event} needs a queue, the line has {NONE}")
        if not self.callid or self.callid == NONE:
            raise Unmappable(f"{self.event} needs a call id (the caller's uniqueid)")
        return {"ts": self.time_s, "queue": self.queue, "call_id": self.callid}

    def member(self) -> str:
        if not self.agent:
            raise Unmappable(f"{self.event} needs a queue member in the agent field")
        return self.agent


def parse_line(raw: bytes, aliases: Mapping[str, str] | None = None) -> QueueLogLine:
    """One line (without its newline); ``Unmappable`` when it is not a queue_log line."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    fields = text.split("|")
    if len(fields) < MIN_FIELDS:
        raise Unmappable(
            f"a queue_log line has at least {MIN_FIELDS} '|'-separated fields "
            f"(time|callid|queue|agent|event), this one has {len(fields)}"
        )
    time_s = _epoch(fields[0])
    event = fields[4].strip().upper()
    if not event:
        raise Unmappable("the event field (5th) is empty")
    agent = _present(fields[3])
    if agent and aliases:
        agent = aliases.get(agent, agent)
    return QueueLogLine(
        time_s=time_s,
        callid=fields[1].strip(),
        queue=_present(fields[2]),
        agent=agent,
        event=event,
        data=tuple(fields[5:]),
        digest=hashlib.sha256(raw.rstrip(b"\r")).hexdigest()[:32],
    )


def _epoch(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise Unmappable(f"the time field must be epoch seconds, got {text[:40]!r}") from None
    if not 0 < value < 1e11:
        raise Unmappable(f"the time field {text[:40]!r} is not a plausible epoch time")
    return int(value) if value.is_integer() else value


def _present(value: str) -> str | None:
    value = value.strip()
    return None if not value or value == NONE else value


class QueueLogMapper:
    """Maps lines in file order; the roster carries agents' queues from line to line."""

    def __init__(
        self, roster: AgentRoster | None = None, aliases: Mapping[str, str] | None = None
    ) -> None:
        self.roster = roster or AgentRoster()
        self.aliases = dict(aliases or {})
        self._handlers: dict[str, Callable[[QueueLogLine], list[Event]]] = {
            "ENTERQUEUE": self._offered,
            "CONNECT": self._answered,
            "ABANDON": self._abandoned,
            **dict.fromkeys(EXIT_REASONS, self._exited),
            **dict.fromkeys(("COMPLETECALLER", "COMPLETEAGENT"), self._completed),
            **dict.fromkeys(("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"), self._transferred),
            "ADDMEMBER": self._added,
            "REMOVEMEMBER": self._removed,
            **dict.fromkeys(("PAUSE", "UNPAUSE"), self._paused),
            **dict.fromkeys(("AGENTLOGIN", "AGENTCALLBACKLOGIN"), self._logged_in),
            **dict.fromkeys(("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"), self._logged_off),
        }

    def map(self, raw: bytes) -> Mapped:
        line = parse_line(raw, self.aliases)
        return self.map_parsed(line)

    def map_parsed(self, line: QueueLogLine) -> Mapped:
        handler = self._handlers.get(line.event)
        if handler is None:
            # RINGNOANSWER, RINGCANCELED, PAUSEALL, QUEUESTART, CONFIGRELOAD, DID, custom
            # QueueLog() events...: nothing in the contract, counted by name.
            return Skipped(line.event)
        return handler(line)

    def snapshot_events(self, time_s: int) -> list[Event]:
        """Each known agent's state at ``time_s``: where a backfill starts, agents are known."""
        events = []
        for agent, change in self.roster.snapshot(time_s).items():
            event = _agent_event("", agent, change)
            event["event_id"] = event_id("ast-snapshot", str(time_s), agent, change.state)
            events.append(event)
        return events

    # Calls -----------------------------------------------------------------------------

    def _offered(self, line: QueueLogLine) -> list[Event]:
        event = {"event_id": line.ids("offered"), "type": "call.offered", **line.call_fields()}
        caller = line.data[1].strip() if len(line.data) > 1 else ""
        if caller:
            event["caller"] = caller  # pseudonymised before publishing
        return [event]

    def _answered(self, line: QueueLogLine) -> list[Event]:
        agent = line.member()
        wait_s = seconds(_field(line, 0, "holdtime"), "holdtime (data1)")
        answered = {
            "event_id": line.ids("answered"),
            "type": "call.answered",
            **line.call_fields(),
            "agent_id": agent,
            "wait_s": wait_s,
        }
        change = self.roster.call_started(agent, str(line.queue), int(line.time_s))
        return [answered, _agent_event(line.ids("agent"), agent, change)]

    def _abandoned(self, line: QueueLogLine) -> list[Event]:
        event = {"event_id": line.ids("abandoned"), "type": "call.abandoned", **line.call_fields()}
        return [_with_wait(event, line)]

    def _exited(self, line: QueueLogLine) -> list[Event]:
        event = {
            "event_id": line.ids("exited"),
            "type": "call.exited",
            **line.call_fields(),
            "reason": EXIT_REASONS[line.event],
        }
        return [_with_wait(event, line)]

    def _completed(self, line: QueueLogLine) -> list[Event]:
        agent = line.member()
        talk_s = seconds(_field(line, 1, "calltime"), "calltime (data2)")
        return [
            _ended(line, agent, talk_s),
            self._call_over(line, agent),
        ]

    def _transferred(self, line: QueueLogLine) -> list[Event]:
        agent = line.member()
        destination, talk = _transfer_parts(line)
        transferred = {
            "event_id": line.ids("transferred"),
            "type": "call.transferred",
            **line.call_fields(),
            "agent_id": agent,
            # Asterisk logs a dialplan destination, not whether it is a person or a queue.
            "to_agent": destination,
        }
        if talk is None:  # Asterisk 1.2 logged no call time: the end is unknown
            return [transferred]
        return [transferred, _ended(line, agent, talk), self._call_over(line, agent)]

    def _call_over(self, line: QueueLogLine, agent: str) -> Event:
        change = self.roster.call_ended(agent, str(line.queue), int(line.time_s))
        return _agent_event(line.ids("agent"), agent, change)

    # Members ---------------------------------------------------------------------------

    def _added(self, line: QueueLogLine) -> list[Event]:
        agent, queue = line.member(), _member_queue(line)
        paused = bool(line.data) and line.data[0].strip().upper() == "PAUSED"
        change = self.roster.joined(agent, queue, int(line.time_s), paused=paused)
        return [_agent_event(line.ids("agent"), agent, change)]

    def _removed(self, line: QueueLogLine) -> list[Event]:
        agent, queue = line.member(), _member_queue(line)
        change = self.roster.left(agent, queue, int(line.time_s))
        return [_agent_event(line.ids("agent"), agent, change)]

    def _paused(self, line: QueueLogLine) -> list[Event]:
        agent, paused = line.member(), line.event == "PAUSE"
        change = self.roster.paused(agent, line.queue, int(line.time_s), paused=paused)
        event = _agent_event(line.ids("agent"), agent, change)
        reason = line.data[0].strip() if line.data else ""
        if paused and reason:
            event["reason"] = reason
        return [event]

    def _logged_in(self, line: QueueLogLine) -> list[Event]:
        agent = line.member()
        change = self.roster.logged_in(agent, line.queue, int(line.time_s))
        return [_agent_event(line.ids("agent"), agent, change)]

    def _logged_off(self, line: QueueLogLine) -> list[Event]:
        agent = line.member()
        change = self.roster.logged_off(agent, line.queue, int(line.time_s))
        return [_agent_event(line.ids("agent"), agent, change)]


def _field(line: QueueLogLine, index: int, name: str) -> str:
    if len(line.data) <= index or not line.data[index].strip():
        raise Unmappable(f"{line.event} needs its {name} (data{index + 1})")
    return line.data[index]


def _with_wait(event: Event, line: QueueLogLine) -> Event:
    index = EXIT_WAIT_INDEX[line.event]
    if len(line.data) > index and line.data[index].strip():
        event["wait_s"] = seconds(line.data[index], f"waittime (data{index + 1})")
    return event  # older versions log no wait: the worker derives it from the offered time


def _ended(line: QueueLogLine, agent: str, talk_s: float) -> Event:
    return {
        "event_id": line.ids("ended"),
        "type": "call.ended",
        **line.call_fields(),
        "agent_id": agent,
        "talk_s": talk_s,
    }


def _transfer_parts(line: QueueLogLine) -> tuple[str, float | None]:
    """(destination, call time or None) of a transfer line, whatever its version."""
    data = line.data
    if line.event == "ATTENDEDTRANSFER":
        if len(data) < 5:
            raise Unmappable(
                "ATTENDEDTRANSFER needs method|destination|holdtime|calltime|origposition"
            )
        destination = ":".join(part for part in data[:-3] if part)
        return destination, seconds(data[-2], "calltime")
    if len(data) < 2 or not data[0].strip():
        raise Unmappable(f"{line.event} needs extension|context")
    destination = f"{data[0].strip()}@{data[1].strip()}" if data[1].strip() else data[0].strip()
    if len(data) < 4:
        return destination, None
    return destination, seconds(data[3], "calltime (data4)")


def _member_queue(line: QueueLogLine) -> str:
    if not line.queue:
        raise Unmappable(f"{line.event} needs the queue the member joined or left")
    return line.queue


def _agent_event(event_id_: str, agent: str, change: AgentChange) -> Event:
    event: Event = {
        "event_id": event_id_,
        "type": "agent.state",
        "ts": change.ts,
        "agent_id": agent,
        "state": change.state,
    }
    if change.queues:
        event["queues"] = list(change.queues)
    return event


def scrub_line(raw: bytes, pseudonymise: Callable[[str], str]) -> str:
    """A refused line as text for the dead-letter topic, with phone-like data pseudonymised.

    Only the data fields can hold a caller id; time and uniqueid (digits too) stay readable.
    """
    fields = raw.decode("utf-8", errors="replace").rstrip("\r").split("|")
    head, data = fields[:MIN_FIELDS], fields[MIN_FIELDS:]
    scrubbed = [PHONE_LIKE.sub(lambda m: pseudonymise(m.group(0)), part) for part in data]
    return "|".join(head + scrubbed)[:4096]
