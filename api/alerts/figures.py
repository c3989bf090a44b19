"""The figures alert rules read: a queue's live window, and what is true right now.

Window figures are those of ``GET /v1/queues/{queue}/kpis`` (no ``at``). Calls waiting, the
longest wait and agents are taken at ``now`` as ``/metrics`` takes them, not at the window's end
(a live window ends at the end of the current minute, up to 60 s ahead).
"""

from __future__ import annotations

from typing import Any

from api.views import ModelReader
from stream.kpi.windows import live_end_us


class ModelFigures:
    def __init__(self, reader: ModelReader) -> None:
        self.reader = reader

    def queue_names(self) -> list[str]:
        return self.reader.queue_names()

    def figures(self, queue: str, window: str, now_us: int) -> dict[str, Any]:
        figures = self.reader.queue_kpis(queue, window, live_end_us(now_us))
        figures.update(self.live(queue, now_us))
        return figures

    def live(self, queue: str, now_us: int) -> dict[str, Any]:
        waiting = self.reader.waiting(queue, now_us + 1)
        agents = self.reader.agent_states(queue, now_us + 1)
        return {
            "calls_waiting": waiting.calls_waiting,
            "longest_wait_s": waiting.longest_wait_s,
            "calls_waiting_no_agent": calls_waiting_no_agent(waiting.calls_waiting, agents),
            "agents": agents,
            **{f"agents_{state}": count for state, count in agents.items()},
        }


def calls_waiting_no_agent(calls_waiting: int, agents: dict[str, int]) -> int | None:
    """Calls waiting while no agent of the queue is available; None when the queue's agents are
    unknown (a centre that sends no ``agent.state`` events must not be told nobody is there)."""
    known = agents.get("logged_in", 0) + agents.get("logged_out", 0)
    if known == 0:
        return None
    return calls_waiting if agents.get("available", 0) == 0 else 0
