"""Asterisk queue members as contract agents: which queues each serves, and in which state.

``agent.state`` carries one state and the list of queues the agent counts in, while Asterisk
logs membership and pauses one queue at a time (``ADDMEMBER|sales``, ``ADDMEMBER|support``).
Mapping each line alone would leave a member of two queues counted in whichever was logged
last, so the roster remembers each member's queues and base state (available, paused, logged
out) from the lines it has read, and every ``agent.state`` it emits lists all of them.

Asterisk pauses per queue; the contract has one state per agent: the latest pause or unpause
of any queue wins. Calls set ``on_call`` from ``CONNECT`` to the line that ends the call, then
the base state returns. Lines of one agent within the same second (Asterisk logs whole
seconds) get 1 ms apart in file order, so the last one is the state, as in Asterisk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AVAILABLE, PAUSED, LOGGED_OUT, ON_CALL = "available", "paused", "logged_out", "on_call"
SPREAD_S = 0.001  # between same-second lines of one agent


@dataclass
class Member:
    state: str = LOGGED_OUT  # available, paused or logged_out: the state outside calls
    queues: set[str] = field(default_factory=set)
    on_call: bool = False
    second: int = -1  # the last second an agent.state was stamped in, and how many
    in_second: int = 0

    def effective_state(self) -> str:
        return ON_CALL if self.on_call else self.state


@dataclass(frozen=True, slots=True)
class AgentChange:
    """The fields of one ``agent.state`` event: state, queues, time."""

    state: str
    queues: tuple[str, ...]
    ts: float | int


class AgentRoster:
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    def _member(self, agent: str) -> Member:
        return self.members.setdefault(agent, Member())

    def joined(self, agent: str, queue: str, time_s: int, *, paused: bool) -> AgentChange:
        member = self._member(agent)
        member.queues.add(queue)
        if member.state == LOGGED_OUT:
            member.state = PAUSED if paused else AVAILABLE
        return self._change(member, time_s)

    def left(self, agent: str, queue: str, time_s: int) -> AgentChange:
        member = self._member(agent)
        member.queues.discard(queue)
        if not member.queues:
            # Out of every queue: logged out, shown in the queue it just left.
            member.state, member.on_call = LOGGED_OUT, False
            return self._change(member, time_s, queues=(queue,))
        return self._change(member, time_s)

    def paused(self, agent: str, queue: str | None, time_s: int, *, paused: bool) -> AgentChange:
        member = self._member(agent)
        if queue:
            member.queues.add(queue)  # a pause in a queue proves membership of it
        member.state = PAUSED if paused else AVAILABLE
        return self._change(member, time_s)

    def logged_in(self, agent: str, queue: str | None, time_s: int) -> AgentChange:
        member = self._member(agent)
        if queue:
            member.queues.add(queue)
        member.state = AVAILABLE
        return self._change(member, time_s)

    def logged_off(self, agent: str, queue: str | None, time_s: int) -> AgentChange:
        member = self._member(agent)
        member.state, member.on_call = LOGGED_OUT, False
        # Channel agents stay queue members while logged off: their queues see them logged out.
        return self._change(member, time_s, queues=tuple(sorted(member.queues | _one(queue))))

    def call_started(self, agent: str, queue: str, time_s: int) -> AgentChange:
        member = self._member(agent)
        member.queues.add(queue)
        if member.state == LOGGED_OUT:
            member.state = AVAILABLE  # answering a queue call proves the member is logged in
        member.on_call = True
        return self._change(member, time_s)

    def call_ended(self, agent: str, queue: str, time_s: int) -> AgentChange:
        member = self._member(agent)
        member.queues.add(queue)
        member.on_call = False
        if member.state == LOGGED_OUT:
            member.state = AVAILABLE
        return self._change(member, time_s)

    def snapshot(self, time_s: int) -> dict[str, AgentChange]:
        """Every known agent's state at ``time_s``, for a backfill that starts mid-log."""
        return {
            agent: AgentChange(member.effective_state(), tuple(sorted(member.queues)), time_s)
            for agent, member in sorted(self.members.items())
        }

    def _change(
        self, member: Member, time_s: int, queues: tuple[str, ...] | None = None
    ) -> AgentChange:
        if time_s == member.second:
            member.in_second += 1
        else:
            member.second, member.in_second = time_s, 0
        ts = time_s if member.in_second == 0 else round(time_s + member.in_second * SPREAD_S, 3)
        chosen = queues if queues is not None else tuple(sorted(member.queues))
        return AgentChange(member.effective_state(), chosen, ts)

    def to_json(self) -> dict[str, Any]:
        return {
            agent: {
                "state": m.state,
                "queues": sorted(m.queues),
                "on_call": m.on_call,
                "second": m.second,
                "in_second": m.in_second,
            }
            for agent, m in self.members.items()
        }

    @classmethod
    def from_json(cls, data: object) -> AgentRoster:
        roster = cls()
        if not isinstance(data, dict):
            return roster
        for agent, saved in data.items():
            if isinstance(agent, str) and isinstance(saved, dict):
                roster.members[agent] = Member(
                    state=str(saved.get("state", LOGGED_OUT)),
                    queues={str(q) for q in saved.get("queues", [])},
                    on_call=bool(saved.get("on_call", False)),
                    second=int(saved.get("second", -1)),
                    in_second=int(saved.get("in_second", 0)),
                )
        return roster


def _one(queue: str | None) -> set[str]:
    return {queue} if queue else set()
