"""Repeat callers: first-contact resolution, repeat rate and contacts to resolution.

Whether a call is a repeat depends on the same caller's other calls, in any queue, before and
after it: a join across queues and time that no per-queue counter can hold. So the worker keeps
per (queue, minute) the small facts the join needs (which calls were offered, by which caller;
which were answered; which were resolved, and how), in the minute of each fact's own event time,
and the read side joins them when asked. Every fact is written once per call on the queue's own
partition (the call's state decides), so the crash-safety rules of the processor hold unchanged.

Definitions (docs/SEMANTICS.md "Resolution"): a call's *contact time* is its earliest offer in
any queue; the same ``call_id`` in two queues (a transfer) is one contact.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CallKey = tuple[str, str]  # (queue, call_id)


@dataclass(slots=True)
class ContactFacts:
    """One queue's facts for one minute: offers (with caller), answers, resolutions."""

    offered: dict[str, list[Any]] = field(default_factory=dict)  # call_id -> [ts_us, caller]
    answered: dict[str, int] = field(default_factory=dict)  # call_id -> ts_us
    resolved: dict[str, list[Any]] = field(default_factory=dict)  # call_id -> [ts_us, ok, fc]

    def merge(self, other: ContactFacts) -> None:
        # Each fact is emitted once per call: a union, the first value seen stays.
        for call_id, offer in other.offered.items():
            self.offered.setdefault(call_id, offer)
        for call_id, answered_us in other.answered.items():
            self.answered.setdefault(call_id, answered_us)
        for call_id, resolution in other.resolved.items():
            self.resolved.setdefault(call_id, resolution)

    def __bool__(self) -> bool:
        return bool(self.offered or self.answered or self.resolved)

    def to_json(self) -> dict[str, Any]:
        return {
            "off": {c: list(v) for c, v in self.offered.items()},
            "ans": dict(self.answered),
            "res": {c: list(v) for c, v in self.resolved.items()},
        }

    def merge_into_json(self, data: dict[str, Any]) -> None:
        """``from_json(data)``, ``merge(self)`` and ``to_json`` made in ``data`` itself, which
        must be a value ``to_json`` returned that nothing else holds (a record a batch is
        still writing): the same keys in the same order, no copy of what it holds."""
        offered: dict[str, list[Any]] = data["off"]
        for call_id, offer in self.offered.items():
            if call_id not in offered:
                offered[call_id] = list(offer)
        answered: dict[str, int] = data["ans"]
        for call_id, answered_us in self.answered.items():
            answered.setdefault(call_id, answered_us)
        resolved: dict[str, list[Any]] = data["res"]
        for call_id, resolution in self.resolved.items():
            if call_id not in resolved:
                resolved[call_id] = list(resolution)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContactFacts:
        return cls(
            {c: list(v) for c, v in data.get("off", {}).items()},
            dict(data.get("ans", {})),
            {c: list(v) for c, v in data.get("res", {}).items()},
        )


@dataclass(slots=True)
class CallerContacts:
    """One caller's contact times: by call, and all of them sorted (for window counts)."""

    by_call: dict[str, int]
    ordered: list[int]

    def count_between(self, low_us: int, high_us: int, *, high_open: bool) -> int:
        """How many contacts fall in [low, high) or [low, high]."""
        end = bisect_left if high_open else bisect_right
        return end(self.ordered, high_us) - bisect_left(self.ordered, low_us)


@dataclass(slots=True)
class CallerIndex:
    """Every offered call with a caller, by caller: the read side's join table.

    An API replica holds a day of calls here, so it stays lean: calls by queue then call id
    (no key tuple per call), and each caller's calls as one flat list ``[queue, call_id, ...]``
    (a list costs 16 bytes a call where a dict costs about 65).
    """

    calls: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)  # (caller, us)
    by_caller: dict[str, list[str]] = field(default_factory=dict)
    # Built on first use and dropped when the caller's calls change: a join over a window asks
    # for the same few callers thousands of times, so each answer must not rescan their calls.
    _contacts: dict[str, CallerContacts] = field(default_factory=dict, compare=False, repr=False)

    def add(self, call: CallKey, caller: str, offered_us: int) -> None:
        queue, call_id = call
        if self.caller_of(call) == (caller, offered_us):
            return  # the same offer again (its minute was rewritten): nothing changes
        self.remove(call)
        self.calls.setdefault(queue, {})[call_id] = (caller, offered_us)
        self.by_caller.setdefault(caller, []).extend(call)
        self._contacts.pop(caller, None)

    def remove(self, call: CallKey) -> None:
        queue, call_id = call
        in_queue = self.calls.get(queue)
        known = in_queue.pop(call_id, None) if in_queue is not None else None
        if known is None:
            return
        if not in_queue:
            del self.calls[queue]
        caller = known[0]
        self._contacts.pop(caller, None)
        flat = self.by_caller[caller]
        at = flat.index(call_id, 1)
        while at % 2 == 0 or flat[at - 1] != queue:  # a queue named like the call, or the
            at = flat.index(call_id, at + 1)  # same call id offered in another queue
        del flat[at - 1 : at + 1]
        if not flat:
            del self.by_caller[caller]

    def replace_facts(self, queue: str, old: ContactFacts | None, new: ContactFacts | None) -> None:
        """Keep the index equal to the union of every stored minute's offers."""
        for call_id in old.offered if old else ():
            if new is None or call_id not in new.offered:
                self.remove((queue, call_id))
        for call_id, (offered_us, caller) in (new.offered if new else {}).items():
            self.add((queue, call_id), caller, offered_us)

    def caller_of(self, call: CallKey) -> tuple[str, int] | None:
        in_queue = self.calls.get(call[0])
        return in_queue.get(call[1]) if in_queue is not None else None

    def contacts_of(self, caller: str) -> CallerContacts:
        """The caller's calls by contact time (earliest offer in any queue), and sorted."""
        contacts = self._contacts.get(caller)
        if contacts is None:
            times: dict[str, int] = {}
            flat = self.by_caller.get(caller, [])
            for queue, call_id in zip(flat[::2], flat[1::2], strict=True):
                offered_us = self.calls[queue][call_id][1]
                if call_id not in times or offered_us < times[call_id]:
                    times[call_id] = offered_us
            contacts = self._contacts[caller] = CallerContacts(times, sorted(times.values()))
        return contacts


@dataclass(slots=True)
class ResolutionCounts:
    """Additive counts behind the resolution figures of one queue (or the centre) and window."""

    resolutions: int = 0
    first_contact: int = 0
    provisional: int = 0  # first-contact by the repeat rule, with its window still open
    answered_known: int = 0  # answered calls in the window (denominator of the repeat rate)
    answered_repeat: int = 0
    contacts_calls: int = 0  # resolved calls with a caller (contacts to resolution, calls)
    contacts_sum: int = 0

    def merge(self, other: ResolutionCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _caller_contacts(index: CallerIndex, call: CallKey) -> tuple[int, CallerContacts] | None:
    """The call's own contact time and all of its caller's contacts (the call's own included)."""
    known = index.caller_of(call)
    if known is None:
        return None
    contacts = index.contacts_of(known[0])
    return contacts.by_call.get(call[1], known[1]), contacts


def _earlier_within(own_us: int, contacts: CallerContacts, window_us: int) -> int:
    """The caller's other contacts in [own - window, own): the call itself is never in it."""
    return contacts.count_between(own_us - window_us, own_us, high_open=True)


def count_resolutions(
    facts: Iterable[tuple[str, ContactFacts]],
    index: CallerIndex,
    repeat_window_us: Mapping[str, int],
    now_us: int,
) -> ResolutionCounts:
    """The resolution counts of ``facts`` (``(queue, minute facts)`` of one window).

    A resolution is first-contact: by its ``first_contact`` flag when it has one; else, when the
    caller is known, by the repeat rule (resolved, and no other call of the caller within the
    repeat window before or after it; provisional until that window has passed); else when
    resolved. Repeat rate: an answered call whose caller had another call within the window
    before it. Contacts to resolution (calls): 1 + the caller's calls within the window before.
    """
    counts = ResolutionCounts()
    for queue, minute in facts:
        window_us = repeat_window_us[queue]
        for call_id, (_, resolved, first_contact) in minute.resolved.items():
            _count_resolution(counts, index, (queue, call_id), bool(resolved), first_contact,
                              window_us, now_us)  # fmt: skip
        for call_id in minute.answered:
            counts.answered_known += 1
            found = _caller_contacts(index, (queue, call_id))
            if found is not None and _earlier_within(*found, window_us):
                counts.answered_repeat += 1
    return counts


def _count_resolution(
    counts: ResolutionCounts,
    index: CallerIndex,
    call: CallKey,
    resolved: bool,
    first_contact: bool | None,
    window_us: int,
    now_us: int,
) -> None:
    counts.resolutions += 1
    found = _caller_contacts(index, call)
    if found is not None and resolved:
        counts.contacts_calls += 1
        counts.contacts_sum += 1 + _earlier_within(*found, window_us)
    if first_contact is not None:
        counts.first_contact += resolved and first_contact
    elif found is None:
        counts.first_contact += resolved
    elif resolved:
        own, contacts = found
        # Within [own - window, own + window] the call itself is always one of them.
        if contacts.count_between(own - window_us, own + window_us, high_open=False) == 1:
            counts.first_contact += 1
            # Final once the window after the call is over: no later call can make it a repeat.
            counts.provisional += now_us <= own + window_us
