"""Understaffing on purpose: take agents off a queue for a while, then bring them back.

``callpulse simulate --understaff sales:0.2:600:60`` keeps 20 % of sales' agents from 60 s
after the simulator goes live until 600 s later, so the queue's alerts fire and then resolve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from callpulse.simulator.model import Simulation

SPEC_HELP = (
    "QUEUE[:FACTOR[:DURATION_S[:AFTER_S]]]: keep FACTOR (0..1, default 0.2) of the queue's "
    "agents for DURATION_S (default 600) from AFTER_S (default 60) seconds after going live"
)


@dataclass
class UnderstaffPlan:
    queue: str
    factor: float = 0.2
    duration_s: float = 600.0
    after_s: float = 60.0
    phase: str = field(default="waiting", init=False)  # "understaffed", then "restored"

    @classmethod
    def parse(cls, spec: str) -> UnderstaffPlan:
        queue, *numbers = spec.split(":")
        if not queue or len(numbers) > 3:
            raise ValueError(f"{spec!r}: expected {SPEC_HELP}")
        try:
            values = [float(n) for n in numbers]
        except ValueError:
            raise ValueError(f"{spec!r}: FACTOR, DURATION_S, AFTER_S are numbers") from None
        plan = cls(queue, *values)
        if not 0.0 <= plan.factor <= 1.0:
            raise ValueError(f"{spec!r}: FACTOR must be between 0 and 1")
        if not all(math.isfinite(v) and v >= 0 for v in (plan.duration_s, plan.after_s)):
            raise ValueError(f"{spec!r}: DURATION_S and AFTER_S must be >= 0")
        return plan

    def __call__(self, simulation: Simulation, live_s: float) -> None:
        """Called on every tick with the wall seconds since the simulator went live."""
        if self.phase == "waiting" and live_s >= self.after_s:
            simulation.understaff(self.queue, self.factor)
            self.phase = "understaffed"
        if self.phase == "understaffed" and live_s >= self.after_s + self.duration_s:
            simulation.restaff(self.queue)
            self.phase = "restored"
