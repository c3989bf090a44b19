"""Compact in-memory forms of the changelog values an API replica keeps for the retention.

A replica holds every minute of every queue and agent, and every agent's state history, so the
size of one minute or one state change is multiplied by hundreds of thousands. A
``KpiAccumulator`` has 39 slots (344 bytes) whatever it holds, and a minute holds mostly
zeros; an agent's change arrives as a list holding an event id, a fresh state string and a list
of fresh queue strings. The forms here keep what the readers use and share what repeats.

A stored minute is only ever read: merged into a fresh accumulator (``KpiAccumulator.merge``
reads the other side's attributes) or read field by field. So each minute is an instance of a
class made for the set of fields it has non-empty: slots for those, class attributes for the
rest (zeros, one shared empty ``WaitStats``, one read-only empty dict). Nothing may mutate a
stored minute; ``tests/unit/test_api_compact.py`` checks the answers against the plain form.

Contact facts likewise: once the caller index holds a minute's offers, the minute keeps the call
ids it needs, and every call id and caller is one string object however many minutes name it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, cast

from stream.kpi import histogram
from stream.kpi.accumulator import KpiAccumulator, WaitStats
from stream.kpi.agents import AgentRecord, Transition
from stream.kpi.contacts import ContactFacts

_WAITS = ("answered_waits", "abandoned_waits")


class FrozenEmpty(dict[Any, Any]):
    """An empty dict that refuses to change: one instance shared by every stored value that
    has nothing there. (A ``MappingProxyType`` would do, but cannot be copied or pickled.)"""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a stored read-model value is read only")

    __setitem__ = __delitem__ = __ior__ = setdefault = update = _refuse
    pop = popitem = clear = _refuse

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenEmpty:
        return self

    def __reduce__(self) -> tuple[type[FrozenEmpty], tuple[()]]:
        return FrozenEmpty, ()


_EMPTY = FrozenEmpty()


def _empty_value(name: str, default: Any) -> Any:
    if name in _WAITS:
        return _NO_WAITS
    if default is MISSING:  # a keyed sum (default_factory=dict): read-only when shared
        return _EMPTY
    return default


_NO_WAITS = WaitStats(hist=_EMPTY)
# Field name -> its value in an empty accumulator (what a shaped class inherits).
_EMPTY_FIELDS = {f.name: _empty_value(f.name, f.default) for f in fields(KpiAccumulator)}
_NAMES = tuple(_EMPTY_FIELDS)
_SCALAR_NAMES = frozenset(
    name for name, empty in _EMPTY_FIELDS.items() if isinstance(empty, (int, float))
)
_KEYED_NAMES = frozenset(name for name, empty in _EMPTY_FIELDS.items() if empty is _EMPTY)


class StoredMinute:
    """Base of the shaped classes: every field's empty value, as a class attribute."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (StoredMinute, KpiAccumulator)):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _NAMES)

    def __repr__(self) -> str:
        names: tuple[str, ...] = type(self).__slots__
        filled = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"StoredMinute({filled})"


for _name, _value in _EMPTY_FIELDS.items():
    setattr(StoredMinute, _name, _value)

_SHAPES: dict[tuple[str, ...], type[StoredMinute]] = {}


def _shape(names: tuple[str, ...]) -> type[StoredMinute]:
    shaped = _SHAPES.get(names)
    if shaped is None:
        shaped = type("StoredMinute", (StoredMinute,), {"__slots__": names})
        _SHAPES[names] = shaped
    return shaped


def stored_accumulator(data: dict[str, Any]) -> KpiAccumulator:
    """``KpiAccumulator.from_json(data)`` for reading only, holding only its non-empty fields.

    Typed as the accumulator it stands for: it has every attribute ``merge`` and the readers
    use, with the same values. Decoded straight from the JSON: a sparse record (the worker's,
    ``sparse_json``) costs only its few fields.
    """
    filled: dict[str, Any] = {}
    for name, value in data.items():
        if name in _SCALAR_NAMES:
            if value:  # a zero (0 or 0.0) is what the class holds: merge skips both
                filled[name] = value
        elif name in _WAITS:
            if value["n"] or value["hist"] or value["sum"] or value["max"] is not None:
                filled[name] = _waits(value)
        elif name in _KEYED_NAMES and value:
            filled[name] = {key: list(values) for key, values in value.items()}
    minute = object.__new__(_shape(tuple(filled)))
    for name, value in filled.items():
        setattr(minute, name, value)
    return cast(KpiAccumulator, minute)


# Bin bounds are the same few thousand numbers in every histogram: one object each.
_BOUNDS: dict[str, int] = {}


def _waits(data: Mapping[str, Any]) -> WaitStats:
    """``WaitStats.from_json``, with the bin bounds shared."""
    hist: histogram.Histogram = {}
    for label, count in data["hist"].items():
        upper = _BOUNDS.get(label)
        if upper is None:
            upper = _BOUNDS[label] = int(label)
        hist[upper] = count
    return WaitStats(data["n"], data["sum"], data["max"], hist)


# -- agents -----------------------------------------------------------------------------------

# The same few states and queue lists in every change of every agent: one object each.
_QUEUE_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _queues(queues: Any) -> tuple[str, ...]:
    as_tuple = tuple(sys.intern(queue) for queue in queues)
    return _QUEUE_LISTS.setdefault(as_tuple, as_tuple)


def stored_agent(value: Mapping[str, Any]) -> AgentRecord:
    """An agent's record as the readers use it: changes ``(ts_us, None, state, queues)``.

    The event id (the worker's dedupe) and the worker's fields are not read by the API.
    """
    changes: list[Transition] = [
        cast(Transition, (ts_us, None, sys.intern(state), _queues(queues)))
        for ts_us, _, state, queues in value["changes"]
    ]
    return {"agent_id": value["agent_id"], "changes": changes}


# -- contact facts ----------------------------------------------------------------------------


def stored_facts(value: Mapping[str, Any]) -> ContactFacts:
    """``ContactFacts.from_json`` for reading only: tuples for the facts, call ids and callers
    as one string object each however many minutes and indexes name them, no empty dicts."""
    offered = {
        sys.intern(call_id): (ts_us, sys.intern(caller))
        for call_id, (ts_us, caller) in value.get("off", {}).items()
    }
    answered = {sys.intern(c): ts_us for c, ts_us in value.get("ans", {}).items()}
    resolved = {sys.intern(c): tuple(fact) for c, fact in value.get("res", {}).items()}
    return ContactFacts(
        cast(dict[str, list[Any]], offered) if offered else _EMPTY,
        answered if answered else _EMPTY,
        cast(dict[str, list[Any]], resolved) if resolved else _EMPTY,
    )


def indexed_facts(facts: ContactFacts) -> ContactFacts:
    """What a minute keeps once the caller index holds its offers: the call ids of its offers
    (all the index needs to drop them when the minute changes or goes) and of its answers (the
    repeat rate counts them; their times are not read), and its resolutions as they are."""
    offered, answered = tuple(facts.offered), tuple(facts.answered)
    return ContactFacts(
        cast(dict[str, list[Any]], offered) if offered else _EMPTY,
        cast(dict[str, int], answered) if answered else _EMPTY,
        facts.resolved,
    )
