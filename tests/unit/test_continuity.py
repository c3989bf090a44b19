"""Stage two's own account of the routed offsets (``stream.continuity``): nothing skipped,
nothing counted twice, commits never past what was processed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.continuity import Accepted, RoutedContinuity


def started(partition: int = 0, at: int = 10) -> RoutedContinuity:
    continuity = RoutedContinuity()
    continuity.start_at(partition, at)
    return continuity


def test_consecutive_messages_from_the_start_are_all_accepted() -> None:
    assert started().accept(0, [10, 11, 12]) == Accepted(0, 3, None)


def test_messages_already_processed_are_left_out() -> None:
    assert started().accept(0, [8, 9, 10, 11]) == Accepted(2, 4, None)


def test_a_first_message_past_the_next_expected_one_seeks_back_and_takes_nothing() -> None:
    assert started().accept(0, [13, 14]) == Accepted(0, 0, 10)


def test_a_gap_inside_the_batch_keeps_the_messages_before_it_and_seeks_to_the_gap() -> None:
    assert started().accept(0, [10, 11, 14, 15]) == Accepted(0, 2, 12)


def test_processed_moves_the_expectation_and_commits_only_what_moved() -> None:
    continuity = started()
    continuity.start_at(1, 0)
    assert continuity.to_commit() == {0: 10, 1: 0}
    continuity.processed(0, 11)
    assert continuity.accept(0, [12]) == Accepted(0, 1, None)
    assert continuity.to_commit() == {0: 12}
    assert continuity.to_commit() == {}


def test_offsets_whose_commit_failed_are_offered_again() -> None:
    continuity = started()
    assert continuity.to_commit() == {0: 10}
    continuity.not_committed([0])
    assert continuity.to_commit() == {0: 10}


def test_a_forgotten_partition_starts_again_and_ignores_late_news_of_the_old_owner() -> None:
    continuity = started()
    continuity.forget()
    continuity.processed(0, 50)  # a batch that finished after the revocation
    assert not continuity.knows(0)
    assert continuity.to_commit() == {}


@given(
    st.integers(0, 1_000),
    st.lists(st.booleans(), min_size=1, max_size=60),
    st.lists(st.integers(1, 8), min_size=1, max_size=30),
)
def test_any_delivery_with_losses_ends_with_every_offset_accepted_once(
    start: int, lost: list[bool], cuts: list[int]
) -> None:
    """Fetches of ``cuts`` sizes lose messages (``lost``: each once), and a lost tail is
    sought back as the audit does: the accepted offsets are start..end, each once, in order."""
    end = start + len(lost)
    continuity = started(at=start)
    dropped = {start + i for i, gone in enumerate(lost) if gone}
    accepted: list[int] = []
    position = start
    for fetch in range(10 * len(lost) + 10):
        if position == end:
            if continuity.expected(0) == end:
                break
            position = continuity.expected(0)  # the audit: fetched past what was processed
        size = cuts[fetch % len(cuts)]
        fetched = list(range(position, min(end, position + size)))
        position = fetched[-1] + 1
        delivered = [offset for offset in fetched if offset not in dropped]
        dropped -= set(fetched)
        if not delivered:
            continue
        decision = continuity.accept(0, delivered)
        kept = delivered[decision.first : decision.stop]
        accepted.extend(kept)
        if kept:
            continuity.processed(0, kept[-1])
        if decision.rewind_to is not None:
            position = decision.rewind_to
    assert accepted == list(range(start, end))
    assert continuity.to_commit() == {0: end}
