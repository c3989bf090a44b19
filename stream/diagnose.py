"""Where the worker's two consumers stand, written to its log on SIGUSR2 (``kill -USR2 PID``).

A consumer that stops fetching logs nothing: its group generation, which partitions are
assigned, paused or awaiting a position, and how far each was read, committed and can be read
is what tells a stalled stage from an idle one. Everything here is read from the Faust and
aiokafka consumers' own attributes, some of them private: each line is best effort.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

from stream.fetchwait import aiokafka_client, partition_state

log = logging.getLogger(__name__)


def install(app: Any, stage_one: Callable[[], Any]) -> None:
    """SIGUSR2 writes ``describe`` to the log; ``stage_one`` gives stage one's live consumer."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR2, lambda: log.warning("consumer state:\n%s", describe(app, stage_one()))
    )


def describe(app: Any, stage_one_consumer: Any) -> str:
    return "\n".join(
        [
            *_guarded(_stage_two, app),
            *_guarded(_agents, app),
            *_guarded(_stage_one, stage_one_consumer),
        ]
    )


def _guarded(lines: Callable[[Any], Iterator[str]], source: Any) -> Iterator[str]:
    try:
        yield from lines(source)
    except Exception as exc:  # a diagnosis must never take the worker down
        yield f"  ({lines.__name__} not readable: {exc!r})"


def _stage_two(app: Any) -> Iterator[str]:
    consumer = app.consumer
    yield (
        f"stage two: generation {app.consumer_generation_id}, rebalancing {app.rebalancing}, "
        f"flow active {consumer.flow_active}, in recovery {app.tables.recovery.in_recovery}, "
        f"unacked {len(consumer._unacked_messages)}"
    )
    client = aiokafka_client(consumer)
    yield from _group(client)
    active = consumer._get_active_partitions()
    for tp in sorted(consumer.assignment()):
        yield (
            f"  {tp.topic}[{tp.partition}] {'active' if tp in active else 'not active'}: "
            f"read {consumer._read_offset.get(tp)}, committed {consumer._committed_offset.get(tp)}"
            f", {_partition(client, tp)}"
        )


def _agents(app: Any) -> Iterator[str]:
    """Each agent actor: what its channel holds and where its coroutine waits."""
    for agent in app.agents.values():
        for actor in list(agent._actors):
            queue = actor.stream.channel.queue
            yield f"agent {agent.name}: {queue.qsize()} messages queued; waiting in:"
            yield from ("    " + line for line in actor.traceback().splitlines())


def _stage_one(consumer: Any) -> Iterator[str]:
    if consumer is None:
        yield "stage one: no consumer"
        return
    yield "stage one:"
    yield from _group(consumer)
    for tp in sorted(consumer.assignment()):
        yield f"  {tp.topic}[{tp.partition}]: {_partition(consumer, tp)}"


def _group(consumer: Any) -> Iterator[str]:
    coordinator = consumer._coordinator
    yield (
        f"  group {coordinator.group_id}: generation {coordinator.generation}, "
        f"member {coordinator.member_id}, paused {sorted(consumer.paused())}"
    )


def _partition(consumer: Any, tp: Any) -> str:
    """An aiokafka consumer's view of one assigned partition."""
    state = partition_state(consumer, tp)
    position = state.position if state.has_valid_position else "none"
    return f"position {position}, highwater {consumer.highwater(tp)}, paused {state.paused}"
