"""The figures alert rules can name, and only those: a round costs a fraction of the KPI objects'.

A rule names a figure of the window that ``queue_figures`` makes from the merged minutes, or a
live figure (calls waiting, longest wait, agents); ``min_calls`` reads the window's counts.
``ModelFigures`` built the whole KPI object per queue (catalogue, Erlang staffing, occupancy,
retention, targets) and dropped most of it. This source builds the same values from the same
primitives as ``api.views``: ``catalogue.merged`` and ``queue_figures`` for the window, the
resolution join only where a rule names ``fcr_rate`` (the KPI object overrides the accumulator's
with it), and the live figures of ``ModelFigures.live``. A test holds every field equal to
``GET /v1/queues/{queue}/kpis``.

A window's minutes are merged in order into an empty accumulator; a round repeats that for
minutes that did not change. The merge of all but the last minute is kept with the minute
records it came from (the read model replaces a record on every change, never edits one), and
reused while they are the same objects: the current minute, where records arrive, is merged onto
a copy of it. The additions happen in the same order as a full merge, so sums are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from api import catalogue
from api.alerts.config import Rule
from api.alerts.figures import ModelFigures
from api.readmodel import QueueView
from api.views import ModelReader
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import QueueConfig
from stream.kpi.formulas import queue_figures, ratio
from stream.kpi.windows import live_end_us, window_bounds

# Figures of the KPI object that the catalogue sets over ``queue_figures``' own.
RESOLUTION_FIELDS = frozenset({"fcr_rate"})


@dataclass(slots=True)
class _Merged:
    """A window's merge of all but its last minute, and the minute records it came from."""

    parts: list[KpiAccumulator | None]
    acc: KpiAccumulator
    # The whole window's figures, and the record of its last minute they include.
    last: KpiAccumulator | None = None
    figures: dict[str, Any] | None = None


class RuleFigures(ModelFigures):
    """``ModelFigures.figures`` for the fields rules read, at a fraction of the cost."""

    def __init__(self, reader: ModelReader, rules_for: Callable[[str], Sequence[Rule]]) -> None:
        super().__init__(reader)
        self.rules_for = rules_for
        self._merged: dict[tuple[str, str], _Merged] = {}
        self._configs: dict[str, QueueConfig] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def figures(self, queue: str, window: str, now_us: int) -> dict[str, Any]:
        config = self._config(queue)
        start_us, end_us = window_bounds(window, live_end_us(now_us), self._zones[queue])
        view = self.reader.model.queues.get(queue) or QueueView()
        figures = dict(self._window_figures(queue, window, view, start_us, end_us, config))
        if any(rule.field in RESOLUTION_FIELDS for rule in self.rules_for(queue)):
            resolution = catalogue.resolution_counts(
                self.reader.model,
                catalogue.window_facts(queue, view, start_us, end_us),
                {queue: config.repeat_window_s},
                self.reader.now_us(),
            )
            figures["fcr_rate"] = ratio(resolution.first_contact, resolution.resolutions)
        figures.update(self.live(queue, now_us))
        return figures

    def _config(self, queue: str) -> QueueConfig:
        config = self._configs.get(queue)
        if config is None:
            config = self._configs[queue] = self.reader.centre.for_queue(queue)
            self._zones[queue] = config.zone
        return config

    def _window_figures(
        self,
        queue: str,
        window: str,
        view: QueueView,
        start_us: int,
        end_us: int,
        config: QueueConfig,
    ) -> dict[str, Any]:
        buckets = view.buckets
        parts = [buckets.get(bucket) for bucket in catalogue.buckets_between(start_us, end_us)]
        last = parts.pop() if parts else None
        kept = self._merged.get((queue, window))
        if kept is None or not _starts_with(parts, kept.parts):
            kept = self._merged[(queue, window)] = _Merged(parts, _merge(KpiAccumulator(), parts))
        elif len(parts) > len(kept.parts):  # a new minute: ``today`` grows, in order
            _merge(kept.acc, parts[len(kept.parts) :])
            kept.parts, kept.figures = parts, None
        if kept.figures is None or kept.last is not last:
            acc = _merge(_merge(KpiAccumulator(), [kept.acc]), [last])
            kept.figures = queue_figures(
                acc, threshold_s=config.threshold_s, sl_formula=config.sl_formula
            )
            kept.last = last
        return kept.figures


def _starts_with(parts: list[KpiAccumulator | None], kept: list[KpiAccumulator | None]) -> bool:
    """Whether ``parts`` begins with the very records of ``kept``."""
    return len(parts) >= len(kept) and all(a is b for a, b in zip(kept, parts, strict=False))


def _merge(acc: KpiAccumulator, parts: Sequence[KpiAccumulator | None]) -> KpiAccumulator:
    """``catalogue.merged``'s additions, in its order, onto ``acc``."""
    for part in parts:
        if part is not None:
            acc.merge(part)
    return acc
