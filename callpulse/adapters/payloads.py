"""Webhook bodies and export files through their adapter and the gate.

The HTTP endpoints and ``callpulse ingest twilio|amazon-connect|generic FILE`` share this: a
body becomes payloads (``documents``), each payload one or more inputs, each input maps whole
or is refused whole, with its index in the body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from callpulse.adapters import amazon_connect, generic, twilio
from callpulse.adapters.config import AdaptersConfig
from callpulse.adapters.core import Gate, IngestStats, Mapped, Refusal, Unmappable
from callpulse.adapters.documents import Documents, form_document, json_documents

Source = Literal["twilio", "amazon-connect", "generic"]
Input = tuple[int, Callable[[], Mapped]]


@dataclass
class AdapterContext:
    """What mapping needs beyond the payload: configuration, and Twilio's open tasks."""

    config: AdaptersConfig
    timeline: twilio.TaskTimeline


def body_documents(body: bytes, *, form: bool) -> Documents:
    return [(0, form_document(body))] if form else json_documents(body)


def inputs_of(
    source: Source, documents: Documents, context: AdapterContext, mapping: str | None = None
) -> list[Input]:
    if source == "twilio":
        config = context.config.twilio
        return [(i, _bound(twilio.map_callback, d, context.timeline, config)) for i, d in documents]
    if source == "amazon-connect":
        records = amazon_connect.unwrap(documents)
        return [(i, _bound(amazon_connect.map_record, d)) for i, d in records]
    rules = context.config.generic.get(mapping or "")
    if rules is None:
        raise KeyError(mapping)
    return _generic_inputs(rules, documents)


def _generic_inputs(rules: generic.GenericMapping, documents: Documents) -> list[Input]:
    inputs: list[Input] = []
    for _, document in documents:
        items: list[object] = [document]
        if not isinstance(document, Unmappable):
            try:
                items = generic.items_of(rules, document)
            except Unmappable as exc:
                items = [exc]
        for item in items:
            inputs.append((len(inputs), _bound(generic.map_item, rules, item)))
    return inputs


def _bound(function: Callable[..., Mapped], *args: object) -> Callable[[], Mapped]:
    """The mapper of one input; a payload that did not even parse raises its problem."""

    def run() -> Mapped:
        for arg in args:
            if isinstance(arg, Unmappable):
                raise arg
        return function(*args)

    return run


def admit_all(inputs: list[Input], gate: Gate, stats: IngestStats) -> list[Mapped | Refusal]:
    outcomes = []
    for index, mapper in inputs:
        outcome = gate.admit(mapper, index=index)
        stats.count(outcome)
        outcomes.append(outcome)
    return outcomes
