"""The pure half of the benchmark: results, percentiles and the printed table.

Every scenario returns ``Result`` rows; ``format_table`` lines them up with their target and the
naive baseline measured in the same invocation, so a figure is always read as a ratio on this
machine at this moment, never as an absolute number from another day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure. ``higher_is_better`` says which way the target points."""

    scenario: str
    measured: float | None
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    baseline: float | None = None
    baseline_label: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None or self.target is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.target
        return self.measured <= self.target

    @property
    def vs_baseline(self) -> float | None:
        """How many times better than the baseline (above 1 is better, whichever the unit)."""
        return _times_better(self.measured, self.baseline, self.higher_is_better)

    @property
    def vs_target(self) -> float | None:
        """The fraction of the target reached (1.0 or more: met)."""
        return _times_better(self.measured, self.target, self.higher_is_better)


def _times_better(measured: float | None, other: float | None, higher: bool) -> float | None:
    if measured is None or other is None:
        return None
    numerator, denominator = (measured, other) if higher else (other, measured)
    if denominator == 0:
        return None
    return numerator / denominator


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("events/s", "events", "requests/s", "subscribers"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "s":
        return f"{value:,.1f} s"
    return f"{value:,.2f} {unit}".rstrip()


def _target_text(result: Result) -> str:
    if result.target is None:
        return "-"
    sign = ">=" if result.higher_is_better else "<="
    return f"{sign} {format_value(result.target, result.unit)}"


def _met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    header = ["scenario", "measured", "target", "met", "of target", "baseline", "vs baseline"]
    rows = [header]
    for result in results:
        baseline = format_value(result.baseline, result.unit) if result.baseline else "-"
        if result.baseline_label and result.baseline is not None:
            baseline = f"{baseline} ({result.baseline_label})"
        rows.append(
            [
                result.scenario,
                format_value(result.measured, result.unit),
                _target_text(result),
                _met_text(result.met),
                _ratio_text(result.vs_target),
                baseline,
                _ratio_text(result.vs_baseline),
            ]
        )
    return rows


def format_table(results: Sequence[Result]) -> str:
    """A Markdown table, padded so it also reads well in a terminal."""
    rows = table_rows(results)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            + " |"
        )

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    lines = [line(rows[0]), rule, *(line(row) for row in rows[1:])]
    notes = [f"- {r.scenario}: {r.note}" for r in results if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))
