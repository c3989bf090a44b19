"""Any JSON webhook to contract events, through a named field mapping.

A mapping (under ``generic:`` in the adapters configuration, docs/ADAPTERS.md) says where each
contract field is in the payload, as a dotted path (``call.queue.name``, ``legs[0].agent``; a
leading ``$.`` is allowed), how the source's event names become contract types, and how its
times are written::

    my-pbx:
      items: events                      # optional: the payload holds an array of items
      type: {path: event, values: {queue_join: call.offered, answer: call.answered},
             skip: [heartbeat]}          # skipped values are counted, not refused
      event_id: id                       # optional: else a hash of the item
      ts: {path: time, format: epoch_ms} # rfc3339 (default), epoch_s, epoch_ms, or a
                                         # strptime pattern with an optional tz
      fields:
        queue: queue.name
        call_id: call.uuid
        wait_s: {path: wait_ms, scale: 0.001}
      constants: {channel: voice}

A field whose path is absent is left out; when the contract requires it the item is refused,
naming the field and its path. Numeric contract fields (``*_s``, scores) accept numeric strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callpulse.adapters.core import (
    Event,
    Mapped,
    Skipped,
    Unmappable,
    epoch_seconds,
    event_id,
    seconds,
)
from schemas import EVENT_SCHEMAS_DIR
from stream.validation import load_event_schemas

MISSING = object()
TS_FORMATS = ("rfc3339", "epoch_s", "epoch_ms")
_INDEX = re.compile(r"\[(\d+)\]")
_SCHEMAS = load_event_schemas(EVENT_SCHEMAS_DIR)
REQUIRED = {kind: tuple(schema.get("required", ())) for kind, schema in _SCHEMAS.items()}
NUMBER_FIELDS = frozenset(
    name
    for schema in _SCHEMAS.values()
    for name, prop in schema.get("properties", {}).items()
    if isinstance(prop, dict) and prop.get("type") in ("number", "integer") and name != "ts"
)


class MappingConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FieldRule:
    path: str
    scale: float | None = None


@dataclass(frozen=True)
class GenericMapping:
    name: str
    type_path: str
    type_values: Mapping[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    items: str | None = None
    event_id_path: str | None = None
    ts_path: str = "ts"
    ts_format: str = "rfc3339"
    ts_zone: ZoneInfo | None = None
    fields: Mapping[str, FieldRule] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)


def resolve(document: object, path: str) -> object:
    """The value at a dotted path (``a.b[0].c`` or ``a.b.0.c``), or ``MISSING``."""
    value = document
    for part in _INDEX.sub(r".\1", path.removeprefix("$.").removeprefix("$")).split("."):
        if part == "":
            continue
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def items_of(mapping: GenericMapping, payload: object) -> list[object]:
    """The items one payload holds: itself, or the array at ``items``."""
    if mapping.items is None:
        return [payload]
    found = resolve(payload, mapping.items)
    if not isinstance(found, list):
        raise Unmappable(f"path '{mapping.items}' (items) is not an array in this payload")
    return found


def map_item(mapping: GenericMapping, item: object) -> Mapped:
    if not isinstance(item, dict):
        raise Unmappable("an item is a JSON object")
    kind = _event_type(mapping, item)
    if isinstance(kind, Skipped):
        return kind
    problems: list[str] = []
    reported: set[str] = set()  # fields whose value was there but wrong: said once
    event: Event = {"type": kind, **mapping.constants}
    event["event_id"] = _event_id(mapping, item, kind)
    try:
        event["ts"] = _timestamp(mapping, item)
    except Unmappable as exc:
        problems.extend(exc.problems)
        reported.add("ts")
    for name, rule in mapping.fields.items():
        value = resolve(item, rule.path)
        if value is MISSING or value is None:
            continue
        try:
            event[name] = _converted(name, rule, value)
        except Unmappable as exc:
            problems.extend(exc.problems)
            reported.add(name)
    problems.extend(
        f"{kind}: field '{name}' is required; path '{_path_of(mapping, name)}' is absent"
        for name in REQUIRED.get(kind, ())
        if name not in event and name not in reported
    )
    if problems:
        raise Unmappable(*problems)
    return [event]


def _event_type(mapping: GenericMapping, item: dict[str, Any]) -> str | Skipped:
    value = resolve(item, mapping.type_path)
    if value is MISSING:
        raise Unmappable(f"the event type path '{mapping.type_path}' is absent")
    text = str(value)
    if text in mapping.skip:
        return Skipped(text)
    if mapping.type_values:
        kind = mapping.type_values.get(text)
        if kind is None:
            known = ", ".join(sorted(mapping.type_values))
            raise Unmappable(f"event type {text!r} is not mapped (mapped: {known})")
        return kind
    if text not in REQUIRED:
        raise Unmappable(f"event type {text!r} is not a contract type and no values are mapped")
    return text


def _event_id(mapping: GenericMapping, item: dict[str, Any], kind: str) -> str:
    if mapping.event_id_path:
        value = resolve(item, mapping.event_id_path)
        if value is not MISSING and value not in (None, ""):
            return event_id(f"generic-{mapping.name}", str(value), kind)
    # No source id: the item's content is its identity (keys sorted: order does not matter).
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return event_id(f"generic-{mapping.name}", canonical, kind)


def _timestamp(mapping: GenericMapping, item: dict[str, Any]) -> object:
    value = resolve(item, mapping.ts_path)
    if value is MISSING or value in (None, ""):
        raise Unmappable(f"the time path '{mapping.ts_path}' is absent")
    if mapping.ts_format in ("epoch_s", "epoch_ms"):
        unit_s = 0.001 if mapping.ts_format == "epoch_ms" else 1.0
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Unmappable(
                f"time {value!r} at '{mapping.ts_path}' is not {mapping.ts_format}"
            ) from None
        return round(epoch_seconds(number, mapping.ts_path, unit_s=unit_s), 6)
    if mapping.ts_format == "rfc3339":
        return value  # the validator reads RFC 3339 text and epoch numbers
    try:
        moment = datetime.strptime(str(value), mapping.ts_format)  # noqa: DTZ007  # zone below
    except ValueError:
        raise Unmappable(
            f"time {value!r} at '{mapping.ts_path}' does not match {mapping.ts_format!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=mapping.ts_zone or ZoneInfo("UTC"))
    return moment.isoformat()


def _converted(name: str, rule: FieldRule, value: object) -> object:
    if rule.scale is not None or name in NUMBER_FIELDS:
        number = seconds(value, rule.path)  # numeric text included
        return round(number * rule.scale, 6) if rule.scale is not None else number
    if name == "queues" and isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool) and name != "score":
        return str(value)  # ids written as numbers by the source
    return value


def _path_of(mapping: GenericMapping, name: str) -> str:
    rule = mapping.fields.get(name)
    if name == "ts":
        return mapping.ts_path
    return rule.path if rule else "(not mapped)"


def parse_mapping(name: str, raw: object, event_types: frozenset[str]) -> GenericMapping:
    """One mapping from the configuration; ``MappingConfigError`` naming the bad key."""
    where = f"generic.{name}"
    if not isinstance(raw, dict):
        raise MappingConfigError(f"{where}: a mapping is an object")
    unknown = set(raw) - {"items", "type", "event_id", "ts", "fields", "constants"}
    if unknown:
        raise MappingConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    type_spec = raw.get("type")
    if isinstance(type_spec, str):
        type_spec = {"path": type_spec}
    if not isinstance(type_spec, dict) or not isinstance(type_spec.get("path"), str):
        raise MappingConfigError(f"{where}.type: needs a 'path'")
    values = {str(k): str(v) for k, v in (type_spec.get("values") or {}).items()}
    bad = sorted(v for v in values.values() if v not in event_types)
    if bad:
        raise MappingConfigError(f"{where}.type.values: not contract types: {', '.join(bad)}")
    ts_spec = raw.get("ts") or {}
    if isinstance(ts_spec, str):
        ts_spec = {"path": ts_spec}
    ts_format = str(ts_spec.get("format", "rfc3339"))
    if ts_format not in TS_FORMATS and "%" not in ts_format:
        raise MappingConfigError(
            f"{where}.ts.format: {ts_format!r} is not {', '.join(TS_FORMATS)} or a strptime pattern"
        )
    return GenericMapping(
        name=name,
        type_path=type_spec["path"],
        type_values=values,
        skip=frozenset(str(v) for v in type_spec.get("skip") or ()),
        items=raw.get("items"),
        event_id_path=raw.get("event_id"),
        ts_path=str(ts_spec.get("path", "ts")),
        ts_format=ts_format,
        ts_zone=_zone(ts_spec.get("tz"), where),
        fields={k: _rule(k, v, where) for k, v in (raw.get("fields") or {}).items()},
        constants=dict(raw.get("constants") or {}),
    )


def _zone(name: object, where: str) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingConfigError(f"{where}.ts.tz: unknown time zone {name!r}") from None


def _rule(name: str, spec: object, where: str) -> FieldRule:
    if isinstance(spec, str):
        return FieldRule(spec)
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        scale = spec.get("scale")
        if scale is not None and not isinstance(scale, int | float):
            raise MappingConfigError(f"{where}.fields.{name}.scale: must be a number")
        return FieldRule(spec["path"], None if scale is None else float(scale))
    raise MappingConfigError(f"{where}.fields.{name}: a path, or {{path, scale}}")
