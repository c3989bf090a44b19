"""KPI objects (CONTRACT.md, KPIS.md) assembled from the read model: merge buckets, derive ratios.

Every figure is computed at read time from the view: rolling windows, ``today``, intervals and
the centre total merge per-minute accumulators; resolution, occupancy, staffing and retention
come from ``api.catalogue``. ``compare`` adds the same object for the previous window and the
same window last week.

The whole-centre answer and intervals also come as generators (``centre_kpis_slices``,
``intervals_slices``) that yield between queues (intervals): the answer refresher
(api/refresh.py) builds them a few milliseconds at a time between requests. The model may
change between two slices, but each queue is read whole within one. The plain methods drive the
same generators to their end, so both forms give the same figures.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Generator, Sequence
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from api import catalogue, clock
from api.catalogue import WindowParts
from api.readmodel import QueueView, ReadModel
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.agents import count_states, state_at
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.contacts import ResolutionCounts
from stream.kpi.formulas import agent_figures, catalogue_figures, queue_figures
from stream.kpi.occupancy import occupancy_parts_us
from stream.kpi.targets import targets_object
from stream.kpi.timeutil import US_PER_S, parse_ts_us, us_to_rfc3339
from stream.kpi.waiting import MAX_CALL_WAIT_US, WaitingNow, waiting_at
from stream.kpi.windows import INTERVAL_SIZES_S, interval_starts, window_bounds

KpiObject = dict[str, Any]
T = TypeVar("T")


def to_end(slices: Generator[None, None, T]) -> T:
    """Run a build in slices in one piece."""
    while True:
        try:
            next(slices)
        except StopIteration as done:
            result: T = done.value
            return result


class KpiReader(Protocol):
    """What the routes need; tests can serve it from a model filled without a broker."""

    def queue_exists(self, queue: str) -> bool: ...

    def queue_zone(self, queue: str) -> ZoneInfo: ...

    def queue_kpis(
        self,
        queue: str,
        window: str,
        at_us: int,
        threshold_s: int | None = None,
        compare: Sequence[str] = (),
    ) -> KpiObject: ...

    def centre_kpis(
        self,
        window: str,
        at_us: int,
        threshold_s: int | None = None,
        compare: Sequence[str] = (),
    ) -> dict[str, Any]: ...

    def intervals(
        self, queue: str, size: str, start_us: int, end_us: int, threshold_s: int | None = None
    ) -> list[KpiObject]: ...

    def agents(self, at_us: int) -> list[dict[str, Any]]: ...

    def agent_states(self, queue: str | None, at_us: int) -> dict[str, int]: ...

    def agent_kpis(self, agent_id: str, window: str, at_us: int) -> dict[str, Any] | None: ...


MAX_CALL_WAIT_S = MAX_CALL_WAIT_US / US_PER_S
QUEUES_PER_SLICE = 50  # the centre's sums: ~1 ms of queues a slice
AGENTS_PER_SLICE = 100  # the centre's occupancy: ~1.5 ms of agents a slice


class ModelReader:
    def __init__(
        self, model: ReadModel, centre: CentreConfig, max_call_wait_s: float = MAX_CALL_WAIT_S
    ) -> None:
        self.model = model
        self.centre = centre
        # The worker's CALLPULSE_MAX_CALL_WAIT_S: a call waiting longer lost its ending event.
        self.max_call_wait_us = round(max_call_wait_s * US_PER_S)
        self.pinned_now_us: int | None = None

    def at_second(self, now_us: int) -> ModelReader:
        """This reader with its clock stopped at ``now_us``: every figure of one answer is at
        the same instant, so the answer can be stored and served again (api/answers.py)."""
        pinned = copy.copy(self)
        pinned.pinned_now_us = now_us
        return pinned

    def now_us(self) -> int:
        return clock.now_us() if self.pinned_now_us is None else self.pinned_now_us

    def waiting(self, queue: str, at_us: int) -> WaitingNow:
        """Calls waiting at ``at_us`` (a minute boundary, or just after now for live figures)."""
        view = self.model.queues.get(queue) or QueueView()
        return waiting_at(
            at_us, view.boundaries.get(at_us), view.live.values(), self.max_call_wait_us
        )

    def queue_names(self) -> list[str]:
        return sorted(set(self.model.queues) | set(self.centre.queues))

    def queue_exists(self, queue: str) -> bool:
        return queue in self.model.queues or queue in self.centre.queues

    def queue_zone(self, queue: str) -> ZoneInfo:
        return self.centre.for_queue(queue).zone

    def queue_kpis(
        self,
        queue: str,
        window: str,
        at_us: int,
        threshold_s: int | None = None,
        compare: Sequence[str] = (),
    ) -> KpiObject:
        kpis = self._queue_window(queue, window, at_us, threshold_s)[0]
        if compare:
            zone = self.queue_zone(queue)
            kpis["compare"] = {
                name: self._queue_window(
                    queue, window, self._compared(name, kpis, zone), threshold_s
                )[0]
                for name in compare
            }
        return kpis

    def _compared(self, name: str, kpis: KpiObject, zone: ZoneInfo) -> int:
        start_us, end_us = _bounds_of(kpis)
        return catalogue.comparison_at_us(name, kpis["window"], start_us, end_us, zone)

    def _queue_window(
        self, queue: str, window: str, at_us: int, threshold_s: int | None
    ) -> tuple[KpiObject, WindowParts]:
        config = self.centre.for_queue(queue)
        start_us, end_us = window_bounds(window, at_us, config.zone)
        return self._kpi_object(queue, window, start_us, end_us, config, threshold_s)

    def centre_kpis(
        self,
        window: str,
        at_us: int,
        threshold_s: int | None = None,
        compare: Sequence[str] = (),
    ) -> dict[str, Any]:
        return to_end(self.centre_kpis_slices(window, at_us, threshold_s, compare))

    def centre_kpis_slices(
        self,
        window: str,
        at_us: int,
        threshold_s: int | None = None,
        compare: Sequence[str] = (),
    ) -> Generator[None, None, dict[str, Any]]:
        """``centre_kpis``, yielding after each queue."""
        names = self.queue_names()  # once: comparisons line up with the answer's queues
        answer = yield from self._centre_window(names, window, at_us, threshold_s)
        if compare:
            zone = self.centre.defaults.zone
            start_us, end_us = _bounds_of(answer)
            others = {}
            for name in compare:
                compared_at_us = catalogue.comparison_at_us(name, window, start_us, end_us, zone)
                others[name] = yield from self._centre_window(
                    names, window, compared_at_us, threshold_s
                )
            for index, item in enumerate(answer["queues"]):
                item["compare"] = {name: other["queues"][index] for name, other in others.items()}
            answer["total"]["compare"] = {name: other["total"] for name, other in others.items()}
        return answer

    def _centre_window(
        self, names: list[str], window: str, at_us: int, threshold_s: int | None
    ) -> Generator[None, None, dict[str, Any]]:
        defaults = self.centre.defaults
        start_us, end_us = window_bounds(window, at_us, defaults.zone)
        parts = []
        for name in names:
            parts.append(self._queue_window(name, window, at_us, threshold_s))
            yield
        queues = [kpis for kpis, _ in parts]
        total = yield from self._total(parts, window, start_us, end_us, threshold_s)
        return {
            "window": window,
            "start": us_to_rfc3339(start_us),
            "end": us_to_rfc3339(end_us),
            "queues": queues,
            "total": total,
        }

    def intervals(
        self, queue: str, size: str, start_us: int, end_us: int, threshold_s: int | None = None
    ) -> list[KpiObject]:
        return to_end(self.intervals_slices(queue, size, start_us, end_us, threshold_s))

    def intervals_slices(
        self, queue: str, size: str, start_us: int, end_us: int, threshold_s: int | None = None
    ) -> Generator[None, None, list[KpiObject]]:
        """``intervals``, yielding after each interval."""
        config = self.centre.for_queue(queue)
        size_us = INTERVAL_SIZES_S[size] * US_PER_S
        objects = []
        for start in interval_starts(size, start_us, end_us, config.zone):
            objects.append(
                self._kpi_object(queue, size, start, start + size_us, config, threshold_s)[0]
            )
            yield
        return objects

    def agent_states(self, queue: str | None, at_us: int) -> dict[str, int]:
        return count_states(self.model.agents_of(queue), at_us, queue)

    def agents(self, at_us: int) -> list[dict[str, Any]]:
        listing = []
        for agent_id, record in sorted(self.model.agents.items()):
            # The change in force at ``at_us``: found by time, not by walking the history.
            changes = record["changes"]
            index = bisect.bisect_left(changes, at_us, key=lambda change: change[0])
            if index == 0:
                continue
            since_us, _, state, queues = changes[index - 1]
            listing.append(
                {
                    "agent_id": agent_id,
                    "state": state,
                    "queues": queues,
                    "since": us_to_rfc3339(since_us),
                }
            )
        return listing

    def agent_kpis(self, agent_id: str, window: str, at_us: int) -> dict[str, Any] | None:
        record = self.model.agents.get(agent_id)
        per_queue = self.model.agent_buckets.get(agent_id, {})
        if record is None and not per_queue:
            return None
        start_us, end_us = window_bounds(window, at_us, self.centre.defaults.zone)
        acc = KpiAccumulator()
        for buckets in per_queue.values():
            acc.merge(catalogue.merged(buckets, start_us, end_us))
        current = state_at(record, end_us) if record else None
        stop_us = min(end_us, self.now_us())
        busy_us, staffed_us = occupancy_parts_us([record] if record else [], start_us, stop_us)
        return {
            "agent_id": agent_id,
            "window": window,
            "start": us_to_rfc3339(start_us),
            "end": us_to_rfc3339(end_us),
            **agent_figures(acc),
            **catalogue.occupancy_figure(busy_us, staffed_us),
            "state": current[0] if current else None,
            "queues": current[1] if current else [],
        }

    def _kpi_object(
        self,
        queue: str,
        window: str,
        start_us: int,
        end_us: int,
        config: QueueConfig,
        threshold_s: int | None,
    ) -> tuple[KpiObject, WindowParts]:
        view = self.model.queues.get(queue) or QueueView()
        acc = catalogue.merged(view.buckets, start_us, end_us)
        now_us = self.now_us()
        threshold = config.threshold_s if threshold_s is None else threshold_s
        waiting = self.waiting(queue, end_us)
        longest_wait_s = waiting.longest_wait_s
        # A live window ends at the end of the current minute: the oldest call's age is now.
        future_us = end_us - now_us
        if longest_wait_s is not None and future_us > 0:
            longest_wait_s = max(longest_wait_s - future_us / US_PER_S, 0.0)
        resolution = catalogue.resolution_counts(
            self.model,
            catalogue.window_facts(queue, view, start_us, end_us),
            {queue: config.repeat_window_s},
            now_us,
        )
        kpis = {
            "queue": queue,
            "window": window,
            "start": us_to_rfc3339(start_us),
            "end": us_to_rfc3339(end_us),
            **queue_figures(acc, threshold_s=threshold, sl_formula=config.sl_formula),
            "service_level_target": config.target,
            "sl_formula": config.sl_formula,
            "calls_waiting": waiting.calls_waiting,
            "longest_wait_s": longest_wait_s,
            "agents": count_states(self.model.agents_of(queue), end_us, queue),
        }
        parts = WindowParts(acc, resolution, catalogue.offered_in_last_15m(view.buckets, end_us))
        self._add_catalogue(kpis, parts, queue, config, start_us, end_us, now_us)
        return kpis, parts

    def _add_catalogue(
        self,
        kpis: KpiObject,
        parts: WindowParts,
        queue: str | None,
        config: QueueConfig,
        start_us: int,
        end_us: int,
        now_us: int,
        occupancy_us: tuple[int, int] | None = None,
    ) -> None:
        """The KPIS.md figures beyond the contract's, and targets with their status;
        ``occupancy_us``: (busy, staffed) when already summed."""
        busy_us, staffed_us = occupancy_us or occupancy_parts_us(
            self.model.agents_of(queue), start_us, min(end_us, now_us), queue
        )
        kpis.update(catalogue_figures(parts.acc))
        kpis.update(catalogue.resolution_figures(parts.resolution, parts.acc))
        kpis.update(catalogue.occupancy_figure(busy_us, staffed_us))
        kpis["retention_rate"] = catalogue.retention_figure(
            self.model, self.centre.customer_base, start_us, end_us
        )
        kpis.update(
            catalogue.staffing(
                kpis, parts.acc, parts.offered_15m, end_us, now_us, config.staffing_target
            )
        )
        targets = targets_object(kpis, config.all_targets, config.at_risk_margin)
        kpis["targets"] = targets
        kpis["service_level_status"] = targets["service_level"]["status"]

    def _total(
        self,
        parts: list[tuple[KpiObject, WindowParts]],
        window: str,
        start_us: int,
        end_us: int,
        threshold_s: int | None,
    ) -> Generator[None, None, KpiObject]:
        """The centre: sums of the queues, each queue's in-threshold counts at its own T;
        yields between blocks of agents (their occupancy is most of the total's time)."""
        defaults = self.centre.defaults
        acc = catalogue.centre_window(self.model, start_us, end_us)  # kb reads with no queue
        resolution = ResolutionCounts()
        for index, (_, queue_parts) in enumerate(parts, 1):
            acc.merge(queue_parts.acc)
            resolution.merge(queue_parts.resolution)
            if index % QUEUES_PER_SLICE == 0:
                yield
        queues = [kpis for kpis, _ in parts]
        a_t = sum(item["answered_in_threshold"] for item in queues)
        abandoned_t = sum(
            queue_parts.acc.abandoned_waits.at_most(item["service_level_threshold_s"])
            for item, queue_parts in parts
        )
        threshold = defaults.threshold_s if threshold_s is None else threshold_s
        waits = [item["longest_wait_s"] for item in queues if item["longest_wait_s"] is not None]
        kpis: KpiObject = {
            "queue": None,
            "window": window,
            "start": us_to_rfc3339(start_us),
            "end": us_to_rfc3339(end_us),
            **queue_figures(
                acc,
                threshold_s=threshold,
                sl_formula=defaults.sl_formula,
                a_t=a_t,
                abandoned_t=abandoned_t,
            ),
            "service_level_target": defaults.target,
            "sl_formula": defaults.sl_formula,
            "calls_waiting": sum(item["calls_waiting"] for item in queues),
            "longest_wait_s": max(waits) if waits else None,
            "agents": count_states(self.model.agents.values(), end_us, None),
        }
        yield
        offered_15m = sum(queue_parts.offered_15m for _, queue_parts in parts)
        total_parts = WindowParts(acc, resolution, offered_15m)
        now_us = self.now_us()
        agents = self.model.agents_of(None)
        busy_us = staffed_us = 0
        for first in range(0, len(agents), AGENTS_PER_SLICE):
            busy, staffed = occupancy_parts_us(
                agents[first : first + AGENTS_PER_SLICE], start_us, min(end_us, now_us)
            )
            busy_us, staffed_us = busy_us + busy, staffed_us + staffed
            yield
        self._add_catalogue(
            kpis, total_parts, None, defaults, start_us, end_us, now_us, (busy_us, staffed_us)
        )
        return kpis


def _bounds_of(kpis: dict[str, Any]) -> tuple[int, int]:
    return parse_ts_us(kpis["start"]), parse_ts_us(kpis["end"])
