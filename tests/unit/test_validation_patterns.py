"""The identifier pattern answered before the regex (``stream.validation._PrintableFirst``):
the same verdict and the same rejection as the schema compiled as it is, for any text."""

from __future__ import annotations

import re

import fastjsonschema
from hypothesis import given
from hypothesis import strategies as st

from stream.validation import (
    DEFAULT_SCHEMAS_DIR,
    IDENTIFIER_PATTERN,
    EventValidator,
    _local_ref_handler,
    _PrintableFirst,
    load_event_schemas,
)
from tests.unit.test_validation import NOW_US, event

VALIDATOR = EventValidator()
SCHEMAS = load_event_schemas(DEFAULT_SCHEMAS_DIR)
HANDLERS = {"https": _local_ref_handler(DEFAULT_SCHEMAS_DIR)}
# The schemas as fastjsonschema compiles them, nothing replaced: the reference.
PLAIN = {
    event_type: fastjsonschema.compile(
        schema, handlers=HANDLERS, use_default=False, use_formats=False
    )
    for event_type, schema in SCHEMAS.items()
}
# Control characters, the other non-printable ones (separators, format characters, C1
# controls, surrogates), and ordinary text.
TEXT = st.text(
    alphabet=st.sampled_from(
        ["\x00", "\t", "\n", "\x1f", " ", "\x7f", "\x80", "\xa0", "\u2028", "\u200b", "\ud800"]
    )
    | st.characters(),
    max_size=12,
)
# Every name field one event type or another has; others are extra fields, kept as given.
NAME_FIELDS = ("event_id", "queue", "call_id", "agent_id", "ticket_id", "customer_id", "to_queue")


def _patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_patterns(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(value) for value in node))
    return set()


def test_the_schemas_one_pattern_is_the_one_answered_early() -> None:
    assert _patterns(SCHEMAS) == {IDENTIFIER_PATTERN}


@given(TEXT)
def test_printable_first_agrees_with_the_pattern(text: str) -> None:
    pattern = re.compile(IDENTIFIER_PATTERN)
    assert bool(_PrintableFirst(pattern).search(text)) == bool(pattern.search(text))


def _plain_validator() -> EventValidator:
    """An EventValidator whose schema pass is ``PLAIN``, no fast path: every other check its own."""
    plain = EventValidator(fast_path=False)
    plain._rules = {t: (PLAIN[t], *rules[1:]) for t, rules in plain._rules.items()}
    return plain


REFERENCE = _plain_validator()


@given(st.sampled_from(sorted(VALIDATOR.event_types)), st.sampled_from(NAME_FIELDS), TEXT)
def test_names_are_judged_as_the_plain_schema_judges_them(
    event_type: str, field: str, text: str
) -> None:
    candidate = event(event_type, **{field: text})
    assert VALIDATOR.validate(candidate, now_us=NOW_US) == REFERENCE.validate(
        candidate, now_us=NOW_US
    )
