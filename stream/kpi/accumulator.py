"""Counts and sums for one queue (or agent) over one bucket of event time.

Everything here is additive, so ``merge`` of the buckets of a window equals one accumulator fed
every event of that window: rolling windows, ``today``, intervals and whole-centre totals all come
from the same small records. Ratios are derived when reading (``stream.kpi.formulas``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from itertools import compress
from operator import attrgetter, itemgetter
from typing import Any

from stream.kpi import histogram
from stream.kpi.histogram import Histogram


@dataclass(slots=True)
class WaitStats:
    """Waits of one outcome (answered or abandoned): count, sum, max and histogram."""

    count: int = 0
    sum_s: float = 0.0
    max_s: float | None = None
    hist: Histogram = field(default_factory=dict)

    def add(self, wait_s: float) -> None:
        self.count += 1
        self.sum_s += wait_s
        if self.max_s is None or wait_s > self.max_s:
            self.max_s = wait_s
        histogram.add_wait(self.hist, wait_s)

    def merge(self, other: WaitStats) -> None:
        self.count += other.count
        self.sum_s += other.sum_s
        if other.max_s is not None and (self.max_s is None or other.max_s > self.max_s):
            self.max_s = other.max_s
        histogram.merge_into(self.hist, other.hist)

    def at_most(self, threshold_s: int) -> int:
        return histogram.count_at_most(self.hist, threshold_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.count,
            "sum": self.sum_s,
            "max": self.max_s,
            "hist": histogram.to_json(self.hist),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WaitStats:
        return cls(data["n"], data["sum"], data["max"], histogram.from_json(data["hist"]))


_COUNTERS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "exited",
    "transferred",
    "ended",
    "wrapups",
    "csat_responses",
    "csat_satisfied",
    "nps_responses",
    "nps_promoters",
    "nps_detractors",
    "ces_responses",
    "resolutions",
    "first_contact_resolutions",
    "esat_responses",
    "kb_reads",
    "kb_timed_reads",
    "tickets_opened",
    "tickets_resolved",
    "tickets_resolve_timed",
    "ticket_contacts_n",
    "customers_acquired",
    "customers_churned",
)
_SUMS = (
    "talk_s_sum",
    "hold_s_sum",
    "acw_s_sum",
    "ces_score_sum",
    "esat_score_sum",
    "kb_read_s_sum",
    "ticket_resolve_s_sum",
    "ticket_contacts_sum",
)
# Keyed sums: name -> {key: [count, sum, ...]} (SERVQUAL per dimension: [n, perception,
# expectation]; first response per channel: [n, seconds]).
_KEYED = ("servqual", "first_response")
SERVQUAL_DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")


@dataclass(slots=True)
class KpiAccumulator:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    exited: int = 0
    transferred: int = 0
    answered_waits: WaitStats = field(default_factory=WaitStats)
    abandoned_waits: WaitStats = field(default_factory=WaitStats)
    ended: int = 0
    talk_s_sum: float = 0.0
    hold_s_sum: float = 0.0
    wrapups: int = 0
    acw_s_sum: float = 0.0
    csat_responses: int = 0
    csat_satisfied: int = 0
    nps_responses: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    ces_responses: int = 0
    ces_score_sum: float = 0.0
    resolutions: int = 0
    first_contact_resolutions: int = 0
    esat_responses: int = 0
    esat_score_sum: float = 0.0
    kb_reads: int = 0
    kb_timed_reads: int = 0
    kb_read_s_sum: float = 0.0
    tickets_opened: int = 0
    tickets_resolved: int = 0
    tickets_resolve_timed: int = 0
    ticket_resolve_s_sum: float = 0.0
    ticket_contacts_n: int = 0
    ticket_contacts_sum: float = 0.0
    customers_acquired: int = 0
    customers_churned: int = 0
    servqual: dict[str, list[float]] = field(default_factory=dict)
    first_response: dict[str, list[float]] = field(default_factory=dict)

    def add_ended(self, talk_s: float, hold_s: float) -> None:
        self.ended += 1
        self.talk_s_sum += talk_s
        self.hold_s_sum += hold_s

    def add_wrapup(self, acw_s: float) -> None:
        self.wrapups += 1
        self.acw_s_sum += acw_s

    def add_abandoned_wait(self, wait_s: float, short_abandon_s: float) -> None:
        self.abandoned_waits.add(wait_s)
        if wait_s < short_abandon_s:
            self.short_abandoned += 1

    def add_survey(self, survey: str, score: float, scale_max: float | None) -> None:
        if survey == "csat":
            self.csat_responses += 1
            if score >= (scale_max if scale_max is not None else 5) - 1:
                self.csat_satisfied += 1
        elif survey == "nps":
            self.nps_responses += 1
            if score >= 9:
                self.nps_promoters += 1
            elif score <= 6:
                self.nps_detractors += 1
        elif survey == "ces":
            self.ces_responses += 1
            self.ces_score_sum += score
        elif survey == "esat":
            self.esat_responses += 1
            self.esat_score_sum += score

    def add_servqual(self, dimension: str, perception: float, expectation: float) -> None:
        _add_keyed(self.servqual, dimension, (1.0, perception, expectation))

    def add_kb_read(self, read_s: float | None) -> None:
        self.kb_reads += 1
        if read_s is not None:
            self.kb_timed_reads += 1
            self.kb_read_s_sum += read_s

    def add_first_response(self, channel: str, response_s: float) -> None:
        _add_keyed(self.first_response, channel, (1.0, response_s))

    def add_ticket_resolved(self, contacts: int | None) -> None:
        self.tickets_resolved += 1
        if contacts is not None:
            self.ticket_contacts_n += 1
            self.ticket_contacts_sum += contacts

    def add_time_to_resolve(self, resolve_s: float) -> None:
        self.tickets_resolve_timed += 1
        self.ticket_resolve_s_sum += resolve_s

    def add_resolution(self, *, resolved: bool, first_contact: bool | None) -> None:
        self.resolutions += 1
        if resolved and first_contact is not False:
            self.first_contact_resolutions += 1

    def merge(self, other: KpiAccumulator) -> None:
        scalars = _scalars_of(other)
        # Only the fields that are not 0: adding 0 changes nothing (no sum is ever -0.0: they
        # start at 0.0); ``compress`` picks them without a Python-level test per field.
        for name, value in compress(zip(_SCALARS, scalars, strict=True), scalars):
            setattr(self, name, getattr(self, name) + value)
        self.answered_waits.merge(other.answered_waits)
        self.abandoned_waits.merge(other.abandoned_waits)
        for name in _KEYED:
            mine: dict[str, list[float]] = getattr(self, name)
            for key, values in getattr(other, name).items():
                _add_keyed(mine, key, values)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(zip(_SCALARS, _scalars_of(self), strict=True))
        data["answered_waits"] = self.answered_waits.to_json()
        data["abandoned_waits"] = self.abandoned_waits.to_json()
        for name in _KEYED:
            data[name] = {key: list(values) for key, values in getattr(self, name).items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KpiAccumulator:
        acc = cls(**{name: data.get(name, 0) for name in _COUNTERS + _SUMS})
        for name in ("answered_waits", "abandoned_waits"):  # absent in sparse records: none
            waits = data.get(name)
            if waits is not None:
                setattr(acc, name, WaitStats.from_json(waits))
        for name in _KEYED:  # absent in records written before the catalogue
            keyed = data.get(name) or {}
            setattr(acc, name, {key: list(values) for key, values in keyed.items()})
        return acc


_SCALARS = _COUNTERS + _SUMS
_SCALAR_NAMES = frozenset(_SCALARS)
_WAIT_NAMES = frozenset({"answered_waits", "abandoned_waits"})
_scalars_of = attrgetter(*_SCALARS)
# What ``from_json`` then ``merge`` makes of a field an old record lacks: 0 plus the empty
# accumulator's value (0 for a counter, 0.0 for a sum).
_ABSENT = {name: 0 + getattr(KpiAccumulator(), name) for name in _SCALARS}


def merged_json(
    stored: Mapping[str, Any] | None, deltas: Iterable[KpiAccumulator]
) -> dict[str, Any]:
    """``to_json`` of ``stored`` (an accumulator's JSON; None: an empty one) merged with each
    delta in turn, computed on the JSON itself.

    The same figures as ``from_json``, ``merge`` and ``to_json``, with the same additions in
    the same order (bit-identical floats), at a fraction of the cost: a delta of one message
    touches few fields. Parts no delta changes are shared with ``stored``, never mutated.
    """
    pending = iter(deltas)
    if stored is None:
        # An empty accumulator plus a delta is the delta: 0 + v is v (no sum is ever -0.0).
        first = next(pending, None)
        return _merge_deltas(_stored_json(first or KpiAccumulator()), pending)
    return _merge_deltas(_complete(stored), pending)


# An empty WaitStats as JSON, shared by every stored record without such waits (an agent's
# minutes never have any): nothing mutates a stored value, and a record holding this instead
# of its own dict is one object fewer for the garbage collector to scan.
_NO_WAITS = WaitStats().to_json()


def _stored_json(acc: KpiAccumulator) -> dict[str, Any]:
    """``acc.to_json()``, but sharing ``_NO_WAITS`` for waits it has none of."""
    data = dict(zip(_SCALARS, _scalars_of(acc), strict=True))
    for name in ("answered_waits", "abandoned_waits"):
        waits: WaitStats = getattr(acc, name)
        data[name] = waits.to_json() if waits.count else _NO_WAITS
    for name in _KEYED:
        data[name] = {key: list(values) for key, values in getattr(acc, name).items()}
    return data


def merge_json_into(data: dict[str, Any], deltas: Iterable[KpiAccumulator]) -> None:
    """``merged_json(data, deltas)`` made in ``data`` itself, which must be a value
    ``merged_json`` returned and nothing else holds (nested values are replaced, never
    changed: they may be shared)."""
    _merge_deltas(data, deltas)


def _merge_deltas(data: dict[str, Any], deltas: Iterable[KpiAccumulator]) -> dict[str, Any]:
    for delta in deltas:
        scalars = _scalars_of(delta)
        # Adding 0 (or 0.0 to a sum that can never be -0.0) changes nothing: non-zero only.
        for name, value in compress(zip(_SCALARS, scalars, strict=True), scalars):
            data[name] = data[name] + value
        if delta.answered_waits.count:
            data["answered_waits"] = _merged_waits(data["answered_waits"], delta.answered_waits)
        if delta.abandoned_waits.count:
            data["abandoned_waits"] = _merged_waits(data["abandoned_waits"], delta.abandoned_waits)
        for name in _KEYED:
            added: dict[str, list[float]] = getattr(delta, name)
            if added:
                keyed = dict(data[name])
                for key, values in added.items():
                    _add_keyed(keyed, key, values)
                data[name] = keyed
    return data


def _complete(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A new top-level dict for the result; old records get the fields they lack."""
    data = dict(stored)
    if not data.keys() >= _SCALAR_NAMES:
        for name in _SCALARS:
            data.setdefault(name, _ABSENT[name])
    for name in _KEYED:
        if data.get(name) is None:  # absent in records written before the catalogue
            data[name] = {}
    for name in ("answered_waits", "abandoned_waits"):
        if name not in data:  # absent in a sparse record (``sparse_json``): no waits
            data[name] = _NO_WAITS
    return data


def sparse_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """An accumulator's JSON without its empty parts: zero counters and sums, waits of
    nothing, empty keyed sums. ``from_json`` and ``merged_json`` read it as the full form
    (a zero sum comes back as 0, which every reader adds or compares as 0.0).

    What the worker stores for each minute: most minutes hold a few non-zero fields of 37, so
    this is several times smaller in the table, in the changelog and in every replica.
    """
    sparse: dict[str, Any] = {}
    for name, value in data.items():
        if name in _SCALAR_NAMES:
            if value:
                sparse[name] = value
        elif name in _WAIT_NAMES:
            if _has_waits(value):
                sparse[name] = value
        elif value or name not in _KEYED:
            sparse[name] = value
    return sparse


def merged_sparse_json(stored: Mapping[str, Any] | None, delta: KpiAccumulator) -> dict[str, Any]:
    """``sparse_json(merged_json(stored, (delta,)))``: what the worker stores for a minute.

    A minute's first write (nothing stored) is the delta's own sparse form, built straight
    from it: the same fields in the same order, without the full form's 37 entries first.
    A sparse stored value (what the worker writes) is merged as it is, the fields it gains
    appended in the order the full form would have put them; anything else (an older full
    record, a sum that comes back to 0) takes the long way."""
    if stored is None:
        return _sparse_of(delta)
    merged = _merged_sparse(stored, delta)
    return merged if merged is not None else sparse_json(merged_json(stored, (delta,)))


def _merged_sparse(stored: Mapping[str, Any], delta: KpiAccumulator) -> dict[str, Any] | None:
    """``merged_sparse_json`` of a sparse ``stored``; None when ``stored`` is not sparse or
    the merge leaves a zero (``sparse_json`` would drop it from its place)."""
    held = stored.values()
    if 0 in held or None in held or {} in held:  # 0 is also 0.0 and False
        return None
    for name in _WAIT_NAMES:
        waits = stored.get(name)
        if waits is not None and not _has_waits(waits):
            return None
    data = dict(stored)
    return data if merge_sparse_into(data, delta) else None


def merge_sparse_into(data: dict[str, Any], delta: KpiAccumulator) -> bool:
    """``merged_sparse_json(data, delta)`` made in ``data`` itself, which must be a sparse
    value (``merged_sparse_json``'s) that nothing else holds: its nested values are replaced,
    never changed, so they may be shared. False, ``data`` unchanged, when the merge would
    leave a zero (``sparse_json`` would drop it from its place: ``merged_sparse_json`` then).

    A field ``data`` lacks is appended: after the others, scalars in ``_SCALARS`` order, then
    keyed sums, then waits, as ``_complete`` appends them before ``sparse_json``."""
    scalars = _scalars_of(delta)
    totals = [
        (name, data.get(name, _ABSENT[name]) + value)
        for name, value in compress(zip(_SCALARS, scalars, strict=True), scalars)
    ]
    if not all(map(itemgetter(1), totals)):
        return False
    data.update(totals)
    for name in _KEYED:
        added: dict[str, list[float]] = getattr(delta, name)
        if added:
            keyed = dict(data.get(name) or {})
            for key, keyed_values in added.items():
                _add_keyed(keyed, key, keyed_values)
            data[name] = keyed
    if delta.answered_waits.count:
        data["answered_waits"] = _merged_waits(
            data.get("answered_waits", _NO_WAITS), delta.answered_waits
        )
    if delta.abandoned_waits.count:
        data["abandoned_waits"] = _merged_waits(
            data.get("abandoned_waits", _NO_WAITS), delta.abandoned_waits
        )
    return True


def _has_waits(waits: Mapping[str, Any]) -> bool:
    """What ``sparse_json`` keeps of a waits value."""
    return bool(waits["n"] or waits["hist"] or waits["max"] is not None or waits["sum"])


def _sparse_of(acc: KpiAccumulator) -> dict[str, Any]:
    """``sparse_json(_stored_json(acc))``: non-zero scalars, waits it has, keyed sums it has."""
    scalars = _scalars_of(acc)
    sparse = dict(compress(zip(_SCALARS, scalars, strict=True), scalars))
    for name in ("answered_waits", "abandoned_waits"):
        waits: WaitStats = getattr(acc, name)
        if waits.count:
            sparse[name] = waits.to_json()
    for name in _KEYED:
        keyed: dict[str, list[float]] = getattr(acc, name)
        if keyed:
            sparse[name] = {key: list(values) for key, values in keyed.items()}
    return sparse


def _merged_waits(stored: Mapping[str, Any], delta: WaitStats) -> dict[str, Any]:
    """``WaitStats.merge`` on the JSON form (``delta`` holds at least one wait)."""
    high = stored["max"]
    if delta.max_s is not None and (high is None or delta.max_s > high):
        high = delta.max_s
    hist = dict(stored["hist"])
    for upper, count in delta.hist.items():
        label = str(upper)
        hist[label] = hist.get(label, 0) + count
    return {
        "n": stored["n"] + delta.count,
        "sum": stored["sum"] + delta.sum_s,
        "max": high,
        "hist": hist,
    }


def _add_keyed(target: dict[str, list[float]], key: str, values: Any) -> None:
    """Add ``values`` element-wise into ``target[key]``, never mutating a shared list."""
    current = target.get(key)
    if current is None:
        target[key] = list(values)
    else:
        target[key] = [a + b for a, b in zip(current, values, strict=True)]


def merged(accumulators: Any) -> KpiAccumulator:
    """One accumulator holding the sum of ``accumulators`` (an iterable)."""
    total = KpiAccumulator()
    for acc in accumulators:
        total.merge(acc)
    return total


assert {f.name for f in fields(KpiAccumulator)} == set(_COUNTERS + _SUMS + _KEYED) | {
    "answered_waits",
    "abandoned_waits",
}, "every field must merge and serialise"
