"""Repeat callers: first-contact resolution, its provisional status, repeat rate, contacts.

Time line (hours after T0), caller p1 unless said, repeat window W = 72 h::

    0h            10h                            80h (10h + 72h... the window after c2)
    |-- c1 --------|-- c2 ---------------------------|
    c1 offered 0h, c2 offered 10h: c2 is a repeat of c1; c1 had a callback within W.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream.kpi.contacts import CallerIndex, ContactFacts, ResolutionCounts, count_resolutions

H = 3600 * 1_000_000
W = 72 * H
T0 = 1_709_287_200_000_000


def facts(
    offers: dict[str, tuple[int, str]] | None = None,
    answered: tuple[str, ...] = (),
    resolved: dict[str, tuple[bool, bool | None]] | None = None,
) -> ContactFacts:
    return ContactFacts(
        {c: [T0 + h * H, caller] for c, (h, caller) in (offers or {}).items()},
        dict.fromkeys(answered, T0),
        {c: [T0, ok, fc] for c, (ok, fc) in (resolved or {}).items()},
    )


def index_of(*queued: tuple[str, ContactFacts]) -> CallerIndex:
    index = CallerIndex()
    for queue, minute in queued:
        index.replace_facts(queue, None, minute)
    return index


def counts(
    offers: dict[str, tuple[int, str]],
    resolved: dict[str, tuple[bool, bool | None]],
    now_h: int = 200,
    answered: tuple[str, ...] = (),
) -> ResolutionCounts:
    index = index_of(("q", facts(offers)))
    window = [("q", facts(resolved=resolved, answered=answered))]
    return count_resolutions(window, index, {"q": W}, T0 + now_h * H)


@pytest.mark.parametrize(
    ("offers", "resolved", "first_contact"),
    [
        ({}, {"c1": (True, None)}, 1),  # no caller, no flag: resolved counts
        ({}, {"c1": (False, None)}, 0),  # unresolved never counts
        ({"c1": (0, "p1")}, {"c1": (True, False)}, 0),  # the flag wins over the rule
        ({"c1": (0, "p1"), "c2": (10, "p1")}, {"c1": (True, True)}, 1),  # flag wins again
        ({"c1": (0, "p1")}, {"c1": (True, None)}, 1),  # a lone call: first contact
        ({"c1": (0, "p1"), "c2": (10, "p1")}, {"c2": (True, None)}, 0),  # c2 is a repeat
        ({"c1": (0, "p1"), "c2": (10, "p1")}, {"c1": (True, None)}, 0),  # c1 got a callback
        ({"c1": (0, "p1"), "c2": (72, "p1")}, {"c1": (True, None)}, 0),  # callback at W exactly
        ({"c1": (0, "p1"), "c2": (73, "p1")}, {"c1": (True, None)}, 1),  # callback after W
        ({"c1": (0, "p1"), "c2": (10, "p2")}, {"c1": (True, None)}, 1),  # another caller
    ],
)
def test_first_contact(
    offers: dict[str, tuple[int, str]], resolved: dict[str, Any], first_contact: int
) -> None:
    found = counts(offers, resolved)
    assert (found.resolutions, found.first_contact) == (1, first_contact)


@pytest.mark.parametrize(
    ("now_h", "first_contact", "provisional"),
    [
        (1, 1, 1),  # an hour on: first contact so far, but the caller may call back
        (72, 1, 1),  # exactly W after the call: a call now would still be a repeat
        (73, 1, 0),  # past W: final
    ],
)
def test_repeat_rule_fcr_is_provisional_until_the_window_has_passed(
    now_h: int, first_contact: int, provisional: int
) -> None:
    found = counts({"c1": (0, "p1")}, {"c1": (True, None)}, now_h=now_h)
    assert (found.first_contact, found.provisional) == (first_contact, provisional)


def test_a_callback_makes_a_provisional_fcr_final_and_not_first_contact() -> None:
    early = counts({"c1": (0, "p1")}, {"c1": (True, None)}, now_h=5)
    later = counts({"c1": (0, "p1"), "c2": (10, "p1")}, {"c1": (True, None)}, now_h=11)
    assert (early.first_contact, early.provisional) == (1, 1)
    assert (later.first_contact, later.provisional) == (0, 0)  # demoted: final at once


def test_a_flagged_or_callerless_resolution_is_never_provisional() -> None:
    assert counts({"c1": (0, "p1")}, {"c1": (True, True)}, now_h=1).provisional == 0
    assert counts({}, {"c1": (True, None)}, now_h=1).provisional == 0


def test_transfers_keep_one_contact_across_queues() -> None:
    # c1 offered in sales at 0h and again (transferred) in billing at 1h: one contact, not two.
    index = index_of(("sales", facts({"c1": (0, "p1")})), ("billing", facts({"c1": (1, "p1")})))
    window = [("billing", facts(resolved={"c1": (True, None)}, answered=("c1",)))]
    found = count_resolutions(window, index, {"billing": W}, T0 + 100 * H)
    assert (found.first_contact, found.answered_repeat, found.contacts_sum) == (1, 0, 1)


@pytest.mark.parametrize(
    ("offers", "repeat"),
    [
        ({"c1": (0, "p1")}, 0),  # first call of the caller
        ({"c0": (-10, "p1"), "c1": (0, "p1")}, 1),  # called 10 h before: a repeat
        ({"c0": (-72, "p1"), "c1": (0, "p1")}, 1),  # exactly W before: still a repeat
        ({"c0": (-73, "p1"), "c1": (0, "p1")}, 0),  # before the window
        ({"c1": (0, "p1"), "c2": (5, "p1")}, 0),  # a later call does not make c1 a repeat
        ({}, 0),  # no caller known: not a repeat, still in the denominator
    ],
)
def test_repeat_rate(offers: dict[str, tuple[int, str]], repeat: int) -> None:
    found = counts(offers, {}, answered=("c1",))
    assert (found.answered_known, found.answered_repeat) == (1, repeat)


@pytest.mark.parametrize(
    ("offers", "contacts"),
    [
        ({"c3": (0, "p1")}, 1),  # resolved on its own call
        ({"c1": (-20, "p1"), "c2": (-10, "p1"), "c3": (0, "p1")}, 3),  # third call in W
        ({"c1": (-100, "p1"), "c3": (0, "p1")}, 1),  # the earlier call is outside W
    ],
)
def test_contacts_to_resolution(offers: dict[str, tuple[int, str]], contacts: int) -> None:
    found = counts(offers, {"c3": (True, None)})
    assert (found.contacts_calls, found.contacts_sum) == (1, contacts)


def test_index_follows_replaced_and_deleted_minutes() -> None:
    index = CallerIndex()
    first = facts({"c1": (0, "p1"), "c2": (0, "p2")})
    index.replace_facts("q", None, first)
    second = facts({"c1": (0, "p1")})
    index.replace_facts("q", first, second)  # c2 gone from the record
    assert index.caller_of(("q", "c2")) is None and "p2" not in index.by_caller
    index.replace_facts("q", second, None)  # a tombstone
    assert index == CallerIndex()


def test_index_removes_the_call_of_its_queue_when_ids_repeat() -> None:
    """The same call id in two queues (a transfer), and a queue named like a call id."""
    index = CallerIndex()
    index.replace_facts("sales", None, facts({"c1": (2, "p1"), "c2": (3, "p1")}))
    index.replace_facts("c1", None, facts({"c1": (1, "p1")}))  # a queue named "c1"
    index.replace_facts("billing", None, facts({"c1": (0, "p1")}))
    assert index.contacts_of("p1").by_call == {"c1": T0, "c2": T0 + 3 * H}
    index.replace_facts("sales", facts({"c1": (2, "p1")}), None)
    assert index.by_caller["p1"] == ["sales", "c2", "c1", "c1", "billing", "c1"]
    index.replace_facts("billing", facts({"c1": (0, "p1")}), None)
    assert index.contacts_of("p1").by_call == {"c1": T0 + H, "c2": T0 + 3 * H}
    for queue, minute in (("c1", {"c1": (1, "p1")}), ("sales", {"c2": (3, "p1")})):
        index.replace_facts(queue, facts(minute), None)
    assert index == CallerIndex()


def test_index_moves_a_call_whose_caller_or_time_changed() -> None:
    index = index_of(("q", facts({"c1": (0, "p1")})))
    index.replace_facts("q", None, facts({"c1": (5, "p2")}))
    assert index.caller_of(("q", "c1")) == ("p2", T0 + 5 * H)
    assert "p1" not in index.by_caller and index.contacts_of("p2").ordered == [T0 + 5 * H]


def test_contact_facts_merge_keeps_the_first_value_and_round_trips() -> None:
    a = facts({"c1": (0, "p1")}, resolved={"c1": (True, None)})
    b = facts({"c1": (5, "p9"), "c2": (1, "p2")}, answered=("c2",))
    a.merge(b)
    assert a.offered == {"c1": [T0, "p1"], "c2": [T0 + H, "p2"]}
    assert ContactFacts.from_json(a.to_json()) == a
    assert not ContactFacts() and a


def test_merging_into_a_written_value_gives_what_decode_merge_encode_gives() -> None:
    """What the worker does to a minute an earlier message of the same batch wrote."""
    first = ContactFacts({"c1": [10, "ph1:a"]}, {"c1": 12}, {})
    later = ContactFacts(
        {"c1": [99, "ph1:z"], "c2": [20, "ph1:b"]}, {"c2": 25, "c1": 99}, {"c1": [30, True, None]}
    )
    written = first.to_json()
    shared = written["off"]["c1"]
    expected = ContactFacts.from_json(written)
    expected.merge(later)
    later.merge_into_json(written)
    assert orjson.dumps(written) == orjson.dumps(expected.to_json())  # same keys, same order
    assert written["off"]["c1"] is shared  # the first value stays, not copied
    later.offered["c2"].append("changed")  # the written value holds copies of the delta's
    later.resolved["c1"][1] = False
    assert written["off"]["c2"] == [20, "ph1:b"] and written["res"]["c1"] == [30, True, None]
