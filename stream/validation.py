"""Candidate events to validated events, against the JSON Schemas in ``schemas/events``.

One fastjsonschema validator per event type is compiled at construction and picked by the
candidate's ``type``: the per-type schema already holds the common fields, so each field is
checked once. Before it, a fast check (``stream.fastcheck``) compiled from the same schema,
tightened by the checks that follow the schema, proves the ordinary event valid at a fraction
of the cost; whatever it cannot prove goes through fastjsonschema and those checks, which give
the verdict and the words. An accepted event is a shallow copy of its input plus ``ts_us``;
anything else is a ``Rejection`` with one of ``REASONS``. ``validate`` never raises, whatever
it is given.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
from fastjsonschema import JsonSchemaValueException

from schemas import EVENT_SCHEMAS_DIR
from stream.decode import INVALID_JSON, NOT_AN_OBJECT, Rejection, json_type_name
from stream.fastcheck import IDENTIFIER_PATTERN as IDENTIFIER_PATTERN  # re-exported
from stream.fastcheck import Check as FastCheck
from stream.fastcheck import accept_check
from stream.kpi.timeutil import US_PER_S, TimestampError, parse_ts_us

Event = dict[str, Any]

UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
INVALID_VALUE = "invalid_value"
INVALID_TIMESTAMP = "invalid_timestamp"
TOO_OLD = "too_old"
TOO_FAR_IN_FUTURE = "too_far_in_future"
REASONS = frozenset(
    {
        INVALID_JSON,
        NOT_AN_OBJECT,
        UNKNOWN_TYPE,
        MISSING_FIELD,
        WRONG_TYPE,
        INVALID_VALUE,
        INVALID_TIMESTAMP,
        TOO_OLD,
        TOO_FAR_IN_FUTURE,
    }
)

DEFAULT_SCHEMAS_DIR = EVENT_SCHEMAS_DIR
SCHEMA_SUFFIX = ".schema.json"
COMMON_SCHEMA = f"common{SCHEMA_SUFFIX}"
SCHEMA_BASE_URI = "https://callpulse.dev/schemas/events/"
MAX_NESTING = 64
# No score or duration comes near this, and sums of millions of them stay finite: a bigger
# finite number would overflow a bucket's sum to infinity, which JSON (the changelog) cannot hold.
MAX_MAGNITUDE = 1e9
# Names become parts of the state table's keys, joined by U+001F: a control character in one
# could make two records share a key. No queue, call or agent name needs one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Schema strings that are names (the schemas' ``identifier``: 1 to 200 characters).
_IDENTIFIER_MAX_LENGTH = 200
_NAME_LISTS = ("queues",)

_Check = Callable[[object], object]
# Per event type: the compiled schema, number fields, name fields the schema leaves unchecked
# for control characters, fields the schema keeps shallow, and the fast check.
_Rules = tuple[_Check, tuple[str, ...], tuple[str, ...], frozenset[str], FastCheck]
# What an extra field may hold for the fast check to accept it: no container to walk.
_SCALAR_EXTRA = {"type": ["string", "number", "boolean", "null"]}
# A tuple, not ``dict | list``: building the union per call costs more than the check.
_CONTAINERS = (dict, list)
_ARTICLES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


class EventValidator:
    """Validates candidate events; ``now_us`` is passed in so the bounds are testable."""

    def __init__(
        self,
        schemas_dir: Path | None = None,
        *,
        max_past_s: float = 8 * 86400,
        max_future_s: float = 3600,
        fast_path: bool = True,
    ) -> None:
        """``fast_path=False`` sends every event through fastjsonschema: the reference the
        fast path is tested against."""
        directory = schemas_dir or DEFAULT_SCHEMAS_DIR
        schemas = load_event_schemas(directory)
        if not schemas:
            raise ValueError(f"no event schemas (*{SCHEMA_SUFFIX}) in {directory}")
        handlers = {"https": _local_ref_handler(directory)}
        self._rules: dict[str, _Rules] = {}
        for event_type, schema in schemas.items():
            # fastcheck reads ``default`` and ``format`` as annotations: keep both off here.
            check = fastjsonschema.compile(
                schema, handlers=handlers, use_default=False, use_formats=False
            )
            numbers, names, shallow = (
                _number_fields(schema),
                _unguarded_name_fields(schema),
                _shallow_fields(schema),
            )
            fast = _fast_path_schema(schema, numbers, names, shallow) if fast_path else False
            self._rules[event_type] = (
                _printable_first(check),
                numbers,
                names,
                shallow,
                accept_check(fast),  # accept_check(False) proves nothing
            )
        self._max_past_s = max_past_s
        self._max_future_s = max_future_s
        self._max_past_us = round(max_past_s * US_PER_S)
        self._max_future_us = round(max_future_s * US_PER_S)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._rules)

    def validate(self, candidate: object, *, now_us: int) -> Event | Rejection:
        if not isinstance(candidate, dict):
            detail = f"event is a JSON {json_type_name(candidate)}: expected an object"
            return Rejection(NOT_AN_OBJECT, detail, event=candidate)
        event_type = candidate.get("type")
        if not isinstance(event_type, str) or (rules := self._rules.get(event_type)) is None:
            return _type_rejection(candidate)
        if not rules[4](candidate):  # not proven valid by the fast check: ask the schema
            rejection = _rejection(event_type, rules, candidate)
            if rejection is not None:
                return rejection
        return self._timed_event(event_type, candidate, now_us)

    def _timed_event(self, event_type: str, candidate: Event, now_us: int) -> Event | Rejection:
        try:
            ts_us = parse_ts_us(candidate["ts"])
        except TimestampError as exc:
            return Rejection(INVALID_TIMESTAMP, f"{event_type}: {exc}", event=candidate)
        except (ValueError, OverflowError):
            detail = f"{event_type}: field 'ts' {_show(candidate['ts'])} is out of range"
            return Rejection(INVALID_TIMESTAMP, detail, event=candidate)
        if ts_us < now_us - self._max_past_us:
            detail = f"{event_type}: ts is more than {self._max_past_s:g} s before now"
            return Rejection(TOO_OLD, detail, event=candidate)
        if ts_us > now_us + self._max_future_us:
            detail = f"{event_type}: ts is more than {self._max_future_s:g} s after now"
            return Rejection(TOO_FAR_IN_FUTURE, detail, event=candidate)
        event = dict(candidate)
        event["ts_us"] = ts_us
        return event


def _rejection(event_type: str, rules: _Rules, candidate: Event) -> Rejection | None:
    """The schema's verdict, then the checks after it: None when the event passes them all."""
    check, number_fields, name_fields, shallow_fields, _ = rules
    try:
        check(candidate)
    except JsonSchemaValueException as exc:
        return schema_rejection(event_type, exc, candidate)
    problem = (
        _bad_number_field(candidate, number_fields)
        or _control_character_field(candidate, name_fields)
        or _too_deep_field(candidate, shallow_fields)
    )
    if problem:
        return Rejection(INVALID_VALUE, f"{event_type}: {problem}", event=candidate)
    return None


def _fast_path_schema(
    schema: dict[str, Any],
    number_fields: tuple[str, ...],
    name_fields: tuple[str, ...],
    shallow_fields: frozenset[str],
) -> dict[str, Any]:
    """``schema`` tightened so that what it accepts also passes the checks after it: number
    fields within MAX_MAGNITUDE (NaN and infinities fail every bound in ``stream.fastcheck``),
    names (and lists of names) without control characters, no field that may nest, extra
    fields only scalars."""
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    for name in number_fields:
        properties[name] = _within_magnitude(properties[name])
    for name in name_fields:
        guard: dict[str, Any] = {"pattern": IDENTIFIER_PATTERN}
        if name in _NAME_LISTS:
            guard["items"] = dict(guard)
        properties[name] = {"allOf": [properties[name], guard]}
    for name in properties.keys() - shallow_fields:
        properties[name] = False  # the fast check proves nothing of it: it must be absent
    extra = _SCALAR_EXTRA if schema.get("additionalProperties", True) is True else False
    return {**schema, "properties": properties, "additionalProperties": extra}


def _within_magnitude(prop: dict[str, Any]) -> dict[str, Any] | bool:
    low = prop.get("minimum", -MAX_MAGNITUDE)
    high = prop.get("maximum", MAX_MAGNITUDE)
    if type(low) not in (int, float) or type(high) not in (int, float):
        return False
    return {**prop, "minimum": max(low, -MAX_MAGNITUDE), "maximum": min(high, MAX_MAGNITUDE)}


class _PrintableFirst:
    """The identifier pattern as the compiled schema calls it (``.search(text)``, truthy when
    it matches), answering at once for printable text: a printable string holds no control
    character, so the pattern matches it. Other text (tabs, U+00A0, U+2028...) goes to the
    pattern itself. The regex costs a few tenths of a µs a name, four or five names an event."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def search(self, text: str) -> object:
        return True if text.isprintable() else self.pattern.search(text)


def _printable_first(check: _Check) -> _Check:
    """``check`` with the identifier pattern answered by ``_PrintableFirst``: the same
    verdicts and the same exceptions (fastjsonschema words them from the schema, not from the
    pattern object). A validator compiled differently is left as it is."""
    patterns = getattr(check, "__globals__", {}).get("REGEX_PATTERNS")
    if isinstance(patterns, dict) and isinstance(patterns.get(IDENTIFIER_PATTERN), re.Pattern):
        patterns[IDENTIFIER_PATTERN] = _PrintableFirst(patterns[IDENTIFIER_PATTERN])
    return check


def _bad_number_field(candidate: dict[Any, Any], number_fields: tuple[str, ...]) -> str:
    # JSON cannot carry NaN or infinity, but Python callers can, and a NaN passes every range
    # check a schema can express.
    for name in number_fields:
        value = candidate.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            return f"field '{name}' must be a finite number, got {value!r}"
        if isinstance(value, int | float) and abs(value) > MAX_MAGNITUDE:
            return f"field '{name}' must be between -{MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}"
    return ""


def _control_character_field(candidate: dict[Any, Any], name_fields: tuple[str, ...]) -> str:
    for name in name_fields:
        value = candidate.get(name)
        names = value if name in _NAME_LISTS and isinstance(value, list) else [value]
        for one in names:
            if isinstance(one, str) and _CONTROL.search(one):
                return (
                    f"field '{name}' must not contain control characters (U+0000 to U+001F, U+007F)"
                )
    return ""


def _too_deep_field(candidate: dict[Any, Any], shallow_fields: frozenset[str]) -> str:
    # orjson reads 1024 levels but writes only 254: an accepted event must survive being
    # forwarded (inside a batch) and dead-lettered (inside a record), so extras stay shallow.
    # Fields the schema already holds to a scalar or a list of scalars need no walk.
    if candidate.keys() <= shallow_fields:  # no extra field: the usual case, checked in C
        return ""
    for name, value in candidate.items():
        if (
            isinstance(value, _CONTAINERS)
            and name not in shallow_fields
            and _depth_exceeds(value, MAX_NESTING)
        ):
            name = next(key for key, item in candidate.items() if item is value)
            return f"field '{_show_key(name)}' nests deeper than {MAX_NESTING} levels"
    return ""


def _depth_exceeds(root: dict[Any, Any] | list[Any], limit: int) -> bool:
    """Whether ``root`` nests more than ``limit`` containers deep; iterative, so never recurses."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def load_event_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """Every per-type schema in ``directory``, by event type (the file name before the suffix)."""
    return {
        path.name.removesuffix(SCHEMA_SUFFIX): _read_json(path)
        for path in sorted(directory.glob(f"*{SCHEMA_SUFFIX}"))
        if path.name != COMMON_SCHEMA
    }


def _read_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _local_ref_handler(directory: Path) -> Callable[[str], dict[str, Any]]:
    # fastjsonschema fetches an unknown $ref URI over the network; ours name files next door.
    def load(uri: str) -> dict[str, Any]:
        if not uri.startswith(SCHEMA_BASE_URI):
            raise ValueError(f"$ref {uri} is outside {SCHEMA_BASE_URI}: refusing to fetch it")
        # Only the file name counts: a ref cannot climb out of the schemas directory.
        return _read_json(directory / Path(uri.split("#")[0]).name)

    return load


def _number_fields(schema: dict[str, Any]) -> tuple[str, ...]:
    # ts is left out: parse_ts_us rejects a non-finite ts with its own reason.
    properties: dict[str, Any] = schema.get("properties", {})
    return tuple(
        name
        for name, prop in properties.items()
        if name != "ts"
        and "number" in _as_list(prop.get("type") if isinstance(prop, dict) else None)
    )


def _unguarded_name_fields(schema: dict[str, Any]) -> tuple[str, ...]:
    """Fields holding names (queue, call, agent...), and lists of them (an agent's queues),
    whose schema ``pattern`` does not already refuse control characters."""
    properties: dict[str, Any] = schema.get("properties", {})
    names = []
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        shape = prop.get("items", {}) if name in _NAME_LISTS else prop
        is_name = shape.get("type") == "string" and shape.get("maxLength") == _IDENTIFIER_MAX_LENGTH
        if is_name and not _refuses_control_characters(shape.get("pattern")):
            names.append(name)
    return tuple(names)


def _refuses_control_characters(pattern: object) -> bool:
    """Whether a schema ``pattern`` (searched, as JSON Schema does) refuses exactly what
    ``_CONTROL`` finds, tried on every control character and a few others."""
    if not isinstance(pattern, str):
        return False
    try:
        compiled = re.compile(pattern)
    except re.error:
        return False
    samples = [
        f"x{chr(code)}{tail}" for code in (*range(0x20), 0x7F, 0x80, 0xA0) for tail in ("y", "")
    ]
    return compiled.search("xy") is not None and all(
        (compiled.search(text) is None) == bool(_CONTROL.search(text)) for text in samples
    )


def _shallow_fields(schema: dict[str, Any]) -> frozenset[str]:
    """Fields the schema holds to a scalar, or an array of scalars: never nested deeper."""
    scalars = {"string", "number", "integer", "boolean", "null"}
    properties: dict[str, Any] = schema.get("properties", {})
    shallow = set()
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        types = set(_as_list(prop.get("type")))
        if types == {"array"} and isinstance(prop.get("items"), dict):
            types = set(_as_list(prop["items"].get("type")))
        fixed = [prop["const"]] if "const" in prop else prop.get("enum")
        if (types and types <= scalars) or (
            isinstance(fixed, list) and not any(isinstance(v, _CONTAINERS) for v in fixed)
        ):
            shallow.add(name)
    return frozenset(shallow)


def _as_list(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _type_rejection(candidate: dict[Any, Any]) -> Rejection:
    if "type" not in candidate:
        return Rejection(MISSING_FIELD, "event: field 'type' is required", event=candidate)
    value = candidate["type"]
    if not isinstance(value, str):
        detail = f"event: field 'type' must be a string, got {json_type_name(value)}"
        return Rejection(WRONG_TYPE, detail, event=candidate)
    detail = f"event: type {_show(value)} is not a known event type"
    return Rejection(UNKNOWN_TYPE, detail, event=candidate)


def schema_rejection(
    event_type: str, exc: JsonSchemaValueException, candidate: object
) -> Rejection:
    """Map fastjsonschema's first failure to a reason label and a sentence naming the field."""
    path = _path(exc.name)
    if exc.rule == "required":
        detail = f"{event_type}: field '{_missing_field(exc, path)}' is required"
        return Rejection(MISSING_FIELD, detail, event=candidate)
    alternatives = _required_alternatives(exc)
    if alternatives:
        detail = f"{event_type}: one of fields {alternatives} is required"
        return Rejection(MISSING_FIELD, detail, event=candidate)
    label = path or "event"
    if exc.rule == "type":
        expected = " or ".join(_ARTICLES.get(str(t), str(t)) for t in _as_list(exc.rule_definition))
        got = json_type_name(exc.value)
        detail = f"{event_type}: field '{label}' must be {expected}, got {got}"
        return Rejection(WRONG_TYPE, detail, event=candidate)
    # The schema only bounds a ts string's length; a ts that fails is a timestamp problem.
    reason = INVALID_TIMESTAMP if path == "ts" else INVALID_VALUE
    rule = _bound_text(exc) or _rule_text(exc)
    detail = f"{event_type}: field '{label}' {rule}, got {_show(exc.value)}"
    return Rejection(reason, detail, event=candidate)


def _bound_text(exc: JsonSchemaValueException) -> str:
    """The schemas carry the bounds checked below (schemas/build.py): word them the same."""
    if exc.rule == "pattern":  # the schemas' one pattern: names without control characters
        return "must not contain control characters (U+0000 to U+001F, U+007F)"
    if exc.rule in ("minimum", "maximum") and abs(exc.rule_definition) == MAX_MAGNITUDE:
        return _bad_number_field({"": exc.value}, ("",)).removeprefix("field '' ")
    return ""


def _path(name: str | None) -> str:
    """fastjsonschema's ``data.queues[2]`` as ``queues[2]``; the root is ``""``."""
    text = name or "data"
    return text.removeprefix("data").removeprefix(".")


def _missing_field(exc: JsonSchemaValueException, path: str) -> str:
    required = _as_list(exc.rule_definition)
    present = exc.value if isinstance(exc.value, dict) else {}
    missing = next((str(name) for name in required if name not in present), "?")
    return f"{path}.{missing}" if path else missing


def _required_alternatives(exc: JsonSchemaValueException) -> str:
    """``'to_queue', 'to_agent'`` when the failed rule is an anyOf of bare requirements."""
    if exc.rule != "anyOf":
        return ""
    names: list[str] = []
    for branch in _as_list(exc.rule_definition):
        if not isinstance(branch, dict) or set(branch) != {"required"}:
            return ""
        names.extend(f"'{name}'" for name in branch["required"])
    return ", ".join(names)


def _rule_text(exc: JsonSchemaValueException) -> str:
    message = str(exc.message)
    prefix = f"{exc.name} "
    return message.removeprefix(prefix) if message.startswith(prefix) else message


def _show_key(key: object) -> str:
    return key[:60] if isinstance(key, str) else _show(key)


def _show(value: object) -> str:
    """A short, safe rendering of a bad value: no repr of huge strings, ints or containers."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) or (isinstance(value, int) and abs(value) < 10**18):
        return repr(value)
    return f"a JSON {json_type_name(value)}"
