"""Names of the records in the worker's state table, which is also the API's read model.

The API replays the table's compacted changelog; both sides build and parse keys here.
Record families:

| prefix | key parts | value | |
|---|---|---|---|
| ``b`` | queue, bucket_us | queue accumulator for one minute | read model |
| ``ba`` | queue, agent, bucket_us | agent accumulator for one minute in one queue | read model |
| ``w`` | queue, boundary_us | calls whose finished wait spanned the boundary | read model |
| ``l`` | queue | calls waiting now (live set) | read model |
| ``t`` | routing key | event counters (a queue's: its all-time accumulator too) | read model |
| ``g`` | agent, chunk_us | the agent's state changes in one hour | read model |
| ``k`` | queue, bucket_us | contact facts for one minute (repeat-caller rule) | read model |
| ``x`` | partition, bucket_us | accumulator of events with no queue (kb, customers) | read model |
| ``xa`` | partition | all-time accumulator of those events (retention's base) | read model |
| ``c`` | queue, call_id | one call's state | worker only |
| ``tk`` | queue, ticket_id | one ticket's state | worker only |
| ``d`` | event_id | seen survey, kb or customer event (dedupe) | worker only |

``x`` and ``xa`` are keyed by the partition that writes them: events without a queue have no
record of their own to live in, and a record only its own partition writes keeps the offset
fence exact (see ``stream.processor``).
"""

from __future__ import annotations

from typing import Any

SEP = "\x1f"  # unit separator: cannot clash with a printable queue or agent name

BUCKET = "b"
AGENT_BUCKET = "ba"
BOUNDARY = "w"
LIVE = "l"
TOTALS = "t"
AGENT = "g"
CONTACTS = "k"
CENTRE_BUCKET = "x"
CENTRE_TOTALS = "xa"
CALL = "c"
TICKET = "tk"
SEEN = "d"

READ_MODEL_FAMILIES = frozenset(
    {BUCKET, AGENT_BUCKET, BOUNDARY, LIVE, TOTALS, AGENT, CONTACTS, CENTRE_BUCKET, CENTRE_TOTALS}
)
# Families keyed by a bucket start (last key part): they expire with the bucket retention.
BUCKETED_FAMILIES = frozenset({BUCKET, AGENT_BUCKET, BOUNDARY, CONTACTS, CENTRE_BUCKET})

# Fields every record carries for the worker: the source offset that last wrote it (the fence
# that makes a replayed message a no-op for records it already reached) and its partition.
OFFSET_FIELD = "_o"
PARTITION_FIELD = "_p"


def key(family: str, *parts: str | int) -> str:
    return SEP.join((family, *map(str, parts)))


def split_key(record_key: str) -> list[str]:
    return record_key.split(SEP)


def queue_routing_key(queue: str) -> str:
    return f"q:{queue}"


def routing_key(event: dict[str, Any]) -> str:
    """The key that keeps every record an event touches on one partition.

    Call, survey and ticket events go by queue (a call's state and its queue's buckets live
    together); agent states by agent; customer events by customer; the rest to the centre.
    """
    queue = event.get("queue")
    if isinstance(queue, str):
        return queue_routing_key(queue)
    kind = event.get("type")
    if kind == "agent.state":
        return f"a:{event['agent_id']}"
    if isinstance(kind, str) and kind.startswith("customer."):
        return f"k:{event['customer_id']}"
    return "centre"
