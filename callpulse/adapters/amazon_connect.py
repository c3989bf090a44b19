"""Amazon Connect contact records (CTRs) to contract events.

Connect writes one record per contact when it ends, to a Kinesis data stream or Firehose. A
record arrives plain (JSON, NDJSON, Firehose's S3 objects ``{...}{...}``), inside a Firehose
HTTP endpoint request (``{"requestId", "timestamp", "records": [{"data": base64}]}``) or a
Kinesis Lambda event (``{"Records": [{"kinesis": {"data": base64}}]}``).

One queued record gives:

    call.offered      Queue.EnqueueTimestamp; caller CustomerEndpoint.Address
    call.answered     Agent.ConnectedToAgentTimestamp; wait = Queue.Duration
    call.ended        AfterContactWorkStartTimestamp (else DisconnectTimestamp);
                      talk = Agent.AgentInteractionDuration, hold = Agent.CustomerHoldDuration
    call.wrapup_ended Agent.AfterContactWorkEndTimestamp; acw = AfterContactWorkDuration
    call.transferred  TransferCompletedTimestamp (to TransferredToEndpoint or the next contact)
  or, with no agent:
    call.abandoned    the customer hung up in queue (DisconnectReason CUSTOMER_DISCONNECT,
                      TELECOM_PROBLEM or none); wait = Queue.Duration
    call.exited       overflow when transferred on, timeout when the flow ended it

A record without a queue (IVR only, outbound) is skipped. Connect may deliver a record again
(updated attributes): ids are the ContactId and the event kind, so it counts once. A transfer
starts a new contact with the first one's InitialContactId, which is the call id: the same
call keeps its id from queue to queue, as the contract asks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from callpulse.adapters.core import (
    Event,
    Mapped,
    Skipped,
    Unmappable,
    epoch_seconds,
    event_id,
    require_text,
    seconds,
)
from callpulse.adapters.documents import Documents

CHANNELS = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
CUSTOMER_HANGUPS = frozenset({"CUSTOMER_DISCONNECT", "TELECOM_PROBLEM", ""})


def unwrap(documents: Documents) -> Documents:
    """Contact records out of Firehose or Kinesis envelopes; plain records pass through."""
    records: Documents = []
    for index, document in documents:
        if isinstance(document, dict) and isinstance(document.get("records"), list):
            records.extend(_decoded(document["records"], len(records), "data"))
        elif isinstance(document, dict) and isinstance(document.get("Records"), list):
            kinesis = [r.get("kinesis") if isinstance(r, dict) else r for r in document["Records"]]
            records.extend(_decoded(kinesis, len(records), "data"))
        else:
            records.append((len(records) if records else index, document))
    return records


def _decoded(items: list[Any], start: int, key: str) -> Documents:
    out: Documents = []
    for offset, item in enumerate(items):
        index = start + offset
        try:
            data = item[key] if isinstance(item, dict) else None
            if not isinstance(data, str):
                raise Unmappable(f"record {index} has no base64 '{key}'")
            out.append((index, json.loads(base64.b64decode(data, validate=True))))
        except (binascii.Error, ValueError) as exc:
            out.append((index, Unmappable(f"record {index}: data is not base64 JSON ({exc})")))
        except Unmappable as exc:
            out.append((index, exc))
    return out


def map_record(record: object) -> Mapped:
    if not isinstance(record, dict):
        raise Unmappable("a contact record is a JSON object")
    contact = require_text(record, "ContactId")
    queue_info = record.get("Queue") or record.get("QueueInfo")
    if not queue_info:
        return Skipped("not_queued")
    if not isinstance(queue_info, dict):
        raise Unmappable("field 'Queue' must be an object")
    queue = queue_info.get("Name") or queue_info.get("Id")
    if not isinstance(queue, str) or not queue:
        raise Unmappable("field 'Queue.Name' is required")
    common = {"queue": queue, "call_id": str(record.get("InitialContactId") or contact)}
    events = [_offered(record, contact, queue_info, common)]
    agent = record.get("Agent") or record.get("AgentInfo")
    if isinstance(agent, dict) and agent.get("ConnectedToAgentTimestamp"):
        events.extend(_handled(record, contact, queue_info, agent, common))
    else:
        events.append(_unanswered(record, contact, queue_info, common))
    return events


def _event(contact: str, kind: str, ts: object, name: str, common: dict[str, str]) -> Event:
    return {
        "event_id": event_id("connect", contact, kind),
        "type": f"call.{kind}",
        "ts": _time(ts, name),
        **common,
    }


def _time(value: object, name: str) -> float:
    if value in (None, ""):
        raise Unmappable(f"field '{name}' is required")
    return round(epoch_seconds(value, name), 6)


def _offered(record: dict[str, Any], contact: str, queue: dict[str, Any], common: Any) -> Event:
    enqueued = queue.get("EnqueueTimestamp")
    event = _event(contact, "offered", enqueued, "Queue.EnqueueTimestamp", common)
    endpoint = record.get("CustomerEndpoint")
    if isinstance(endpoint, dict) and isinstance(endpoint.get("Address"), str):
        event["caller"] = endpoint["Address"]  # pseudonymised before publishing
    channel = "callback" if record.get("InitiationMethod") == "CALLBACK" else None
    channel = channel or CHANNELS.get(str(record.get("Channel", "")).upper())
    if channel:
        event["channel"] = channel
    return event


def _wait(queue: dict[str, Any]) -> dict[str, float]:
    duration = queue.get("Duration")
    return {} if duration is None else {"wait_s": seconds(duration, "Queue.Duration")}


def _agent_id(agent: dict[str, Any]) -> str:
    name = agent.get("Username") or str(agent.get("ARN") or agent.get("Id") or "").split("/")[-1]
    if not name:
        raise Unmappable("field 'Agent.Username' (or 'Agent.ARN') is required")
    return str(name)


def _handled(
    record: dict[str, Any], contact: str, queue: dict[str, Any], agent: dict[str, Any], common: Any
) -> list[Event]:
    agent_id = _agent_id(agent)
    connected = agent["ConnectedToAgentTimestamp"]
    answered = _event(contact, "answered", connected, "Agent.ConnectedToAgentTimestamp", common)
    answered.update(agent_id=agent_id, **_wait(queue))
    end = agent.get("AfterContactWorkStartTimestamp") or record.get("DisconnectTimestamp")
    ended = _event(contact, "ended", end, "DisconnectTimestamp", common)
    ended.update(
        agent_id=agent_id,
        talk_s=seconds(agent.get("AgentInteractionDuration"), "Agent.AgentInteractionDuration"),
        hold_s=seconds(agent.get("CustomerHoldDuration") or 0, "Agent.CustomerHoldDuration"),
    )
    events = [answered, ended]
    acw_end = agent.get("AfterContactWorkEndTimestamp")
    if acw_end and agent.get("AfterContactWorkDuration") is not None:
        wrapup = _event(contact, "wrapup_ended", acw_end, "AfterContactWorkEndTimestamp", common)
        acw_s = seconds(agent["AfterContactWorkDuration"], "Agent.AfterContactWorkDuration")
        wrapup.update(agent_id=agent_id, acw_s=acw_s)
        events.append(wrapup)
    if record.get("TransferCompletedTimestamp"):
        transferred = _event(
            contact, "transferred", record["TransferCompletedTimestamp"], "Transfer", common
        )
        transferred.update(agent_id=agent_id, to_agent=_transfer_target(record))
        events.append(transferred)
    return events


def _transfer_target(record: dict[str, Any]) -> str:
    endpoint = record.get("TransferredToEndpoint")
    if isinstance(endpoint, dict) and endpoint.get("Address"):
        return str(endpoint["Address"])
    return str(record.get("NextContactId") or "unknown")


def _unanswered(record: dict[str, Any], contact: str, queue: dict[str, Any], common: Any) -> Event:
    left = queue.get("DequeueTimestamp") or record.get("DisconnectTimestamp")
    reason = str(record.get("DisconnectReason") or "").upper()
    transferred = record.get("NextContactId") or record.get("TransferCompletedTimestamp")
    if reason in CUSTOMER_HANGUPS and not transferred:
        event = _event(contact, "abandoned", left, "Queue.DequeueTimestamp", common)
    else:
        event = _event(contact, "exited", left, "Queue.DequeueTimestamp", common)
        event["reason"] = "overflow" if transferred else "timeout"
    event.update(_wait(queue))
    return event
