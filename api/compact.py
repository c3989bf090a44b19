"""Compact in-memory forms of the changelog values an API replica keeps for the retention.

A replica holds every minute of every queue and agent, and every agent's state history, so the
size of one minute or one state change is multiplied by hundreds of thousands. A
``KpiAccumulator`` has 39 slots (344 bytes) whatever it holds, and a minute holds mostly
zeros; an agent's change arrives as a list holding an event id, a fresh state string and a list
of fresh queue strings. The forms here keep what the readers use and share what repeats.

A stored minute is only ever read: merged into a fresh accumulator (``KpiAccumulator.merge``
reads the other side's attributes) or read field by field. So each minute is an instance of a
class made for the set of fields it has non-empty: slots for those, class attributes for the
rest (zeros, one shared empty ``WaitStats``, one read-only empty dict), and its histograms are
shared read-only dicts (a minute's holds a wait or two: the same few thousand recur). Nothing may
mutate a stored minute; ``tests/unit/test_api_compact.py`` checks the answers against the plain
form.

An agent's changes are two columns (``StoredChanges``): timestamps in an array and references to
shared ``(None, state, queues)`` tails, read as the tuples the readers index.

Contact facts likewise: once the caller index holds a minute's offers, the minute keeps the call
ids it needs, and every call id and caller is one string object however many minutes name it.
"""

from __future__ import annotations

import operator
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any, cast

from stream.kpi.accumulator import KpiAccumulator, WaitStats
from stream.kpi.agents import AgentRecord, Transition
from stream.kpi.contacts import ContactFacts

_WAITS = ("answered_waits", "abandoned_waits")


class FrozenDict(dict[Any, Any]):
    """A dict that refuses to change: stored values share them (one empty one for every value
    that has nothing there, one per distinct histogram). (A ``MappingProxyType`` would do, but
    cannot be copied or pickled.)"""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a stored read-model value is read only")

    __setitem__ = __delitem__ = __ior__ = setdefault = update = _refuse
    pop = popitem = clear = _refuse

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[Any, Any]]]:
        return type(self), (dict(self),)


_EMPTY = FrozenDict()


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


# Bin bounds are the same few thousand numbers in every histogram: one object each. A minute's
# histogram holds a wait or two: the same few hundred histograms recur in every queue and agent,
# so each distinct one is a single read-only dict (capped: a table that only grows would leak).
_BOUNDS: dict[str, int] = {}
_HISTOGRAMS: dict[tuple[int, ...], FrozenDict] = {}
_MAX_HISTOGRAMS = 100_000


def _waits(data: Mapping[str, Any]) -> WaitStats:
    """``WaitStats.from_json``, with the bin bounds and the histogram shared."""
    flat: list[int] = []
    for label, count in data["hist"].items():
        upper = _BOUNDS.get(label)
        if upper is None:
            upper = _BOUNDS[label] = int(label)
        flat += (upper, count)
    key = tuple(flat)
    hist = _HISTOGRAMS.get(key)
    if hist is None:
        if len(_HISTOGRAMS) >= _MAX_HISTOGRAMS:
            _HISTOGRAMS.clear()
        hist = _HISTOGRAMS[key] = FrozenDict(zip(key[::2], key[1::2], strict=True))
    total, longest = data["sum"], data["max"]
    if longest == total and type(longest) is type(total):  # one wait: one object, not two
        longest = total
    return WaitStats(data["n"], total, longest, hist)


# -- agents -----------------------------------------------------------------------------------

# The same few (state, queues) pairs in every change of every agent: one object each.
_TAILS: dict[tuple[None, str, tuple[str, ...]], tuple[None, str, tuple[str, ...]]] = {}


def _tail(state: str, queues: Any) -> tuple[None, str, tuple[str, ...]]:
    tail = (None, sys.intern(state), _queue_list(queues))
    return _TAILS.setdefault(tail, tail)


class StoredChanges(Sequence[Transition]):
    """An agent's changes ``(ts_us, None, state, queues)`` in time order, as two columns.

    A change as a tuple costs about 100 bytes (the tuple and its timestamp); here it is 16:
    the timestamp in an array, and a reference to the shared ``(None, state, queues)``. Read
    only: the whole record is replaced when its changelog value changes. Reading an item builds
    its tuple (the readers index changes one by one: that path is kept short).
    """

    __slots__ = ("_tails", "_times")

    def __init__(self, changes: Sequence[Any]) -> None:
        self._times = array("q", [change[0] for change in changes])
        self._tails = [_tail(change[2], change[3]) for change in changes]

    @classmethod
    def joined(cls, parts: Iterable[StoredChanges]) -> StoredChanges:
        """The parts one after the other (an agent's hour chunks, in time order): copied
        column by column in C, not change by change."""
        whole = cls(())
        for part in parts:
            whole._times.extend(part._times)
            whole._tails.extend(part._tails)
        return whole

    def queues(self) -> set[str]:
        """Every queue a change names (the few shared tails, not every change)."""
        return {queue for tail in set(self._tails) for queue in tail[2]}

    def __len__(self) -> int:
        return len(self._times)

    def __getitem__(self, index: Any) -> Any:
        if index.__class__ is int:  # concatenation: one C call, where unpacking builds a list
            return (self._times[index],) + self._tails[index]
        if isinstance(index, slice):
            times, tails = self._times[index], self._tails[index]
            return list(map(tuple.__add__, zip(times), tails))
        return self[operator.index(index)]

    def __iter__(self) -> Iterator[Transition]:
        return cast(Iterator[Transition], map(tuple.__add__, zip(self._times), self._tails))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(
            tuple(mine) == tuple(theirs) for mine, theirs in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StoredChanges({list(self)!r})"


def _queue_list(queues: Any) -> tuple[str, ...]:
    return tuple(sys.intern(queue) for queue in queues)


def joined_agent(agent_id: str, chunks: Iterable[StoredChanges]) -> AgentRecord:
    """An agent's record as the readers use it, from its history's chunks in time order:
    changes ``(ts_us, None, state, queues)``. The event id (the worker's dedupe) and the
    worker's fields are not read by the API."""
    return {"agent_id": agent_id, "changes": StoredChanges.joined(chunks)}


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
