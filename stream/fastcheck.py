"""Predicates that prove a value valid against a JSON Schema, for the common case only.

``accept_check(schema)`` compiles the subset of JSON Schema (draft 2020-12) the event schemas
use into one Python function, as fastjsonschema does, but without its exceptions, messages and
key-set bookkeeping. ``True`` means the value is certainly valid, as fastjsonschema compiled with
``use_default=False, use_formats=False`` judges it; ``False`` only "not proven": the caller then
asks fastjsonschema, which gives the verdict and the wording. So every rule here may be stricter
than the schema, never looser:

- a keyword not understood makes its schema prove nothing (a future schema change can only
  send more values to the slow path), and a property whose schema proves nothing must be absent;
- types are exact Python types: ``str`` (no subclass), ``int`` and ``float`` for numbers (never
  ``bool``; no ``Decimal``), only ``int`` for integers (``3.0`` is left to fastjsonschema,
  which accepts it), ``list`` for arrays, ``dict`` for objects;
- a bound compares as ``low <= value <= high``, which NaN always fails;
- ``pattern`` is understood for the identifier pattern alone, as ``str.isprintable()``: a
  printable string holds no control character, so the pattern matches it;
- ``enum`` and ``const`` are understood for their string members only.

The generated source holds no text from the schema: names, bounds and sets are constants bound
by name in the function's namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

# The identifier's pattern in schemas/events/common.schema.json: no control character.
IDENTIFIER_PATTERN = "^[^\\u0000-\\u001f\\u007f]*(?![\\s\\S])"
# Keywords that never change a verdict: ``default`` is not applied (use_default=False) and
# ``format`` not checked (use_formats=False); ``$defs`` only matter through ``$ref``.
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default", "format"}
)
UNDERSTOOD = ANNOTATIONS | {
    "type",
    *("minLength", "maxLength", "pattern", "enum", "const"),
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    *("items", "minItems", "maxItems"),
    *("properties", "required", "additionalProperties"),
    *("anyOf", "allOf", "if", "then", "else"),
}
_DECIDABLE = ANNOTATIONS | {"required", "properties"}
_JSON_TYPES = ("string", "number", "integer", "boolean", "null", "array", "object")
_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})
_MISSING = object()


def _never(value: object) -> bool:
    return False


def accept_check(schema: object) -> Check:
    """A predicate true only for values ``schema`` certainly accepts."""
    emitter = _Emitter()
    if isinstance(schema, dict) and schema.get("type") == "object":
        function = emitter.object_function(schema, with_combinators=True)
    else:
        test = emitter.test(schema, "value")
        function = None if test is None else emitter.function(f"return {test}")
    if function is None:
        return _never
    exec(emitter.source(), emitter.namespace)  # noqa: S102 -- source built above, no schema text
    check: Check = emitter.namespace[function]
    return check


class _Emitter:
    """Source text of the functions proving one schema, and the constants they name."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"MISSING": _MISSING}
        self._functions: list[str] = []

    def source(self) -> str:
        return "\n\n".join(self._functions)

    def const(self, value: object) -> str:
        name = f"k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def function(self, *body: str) -> str:
        """A function of ``value`` with ``body``: its name."""
        name = f"f{len(self._functions)}"
        lines = [f"def {name}(value):", *(f"    {line}" for line in body)]
        self._functions.append("\n".join(lines))
        return name

    def test(self, schema: object, var: str) -> str | None:
        """A Python expression over ``var`` true only if ``schema`` accepts it; None if none."""
        if schema is True:
            return "True"
        if not isinstance(schema, dict) or not schema.keys() <= UNDERSTOOD:
            return None
        declared = schema.get("type", list(_JSON_TYPES))
        names = declared if isinstance(declared, list) else [declared]
        typed = [test for name in names if (test := self._typed(name, schema, var)) is not None]
        combined = self._combinators(schema, var)
        if not typed or combined is None:
            return None
        return _all([_any(typed), *combined])

    def _typed(self, name: object, schema: dict[str, Any], var: str) -> str | None:
        """``var`` is of JSON type ``name`` and meets that type's keywords."""
        if name == "string":
            return self._string(schema, var)
        if "enum" in schema or "const" in schema:
            return None  # only string members of enum and const are understood
        if name in ("number", "integer"):
            return self._number(schema, var, integer=name == "integer")
        if name == "boolean":
            return f"type({var}) is bool"
        if name == "null":
            return f"{var} is None"
        if name == "array":
            return self._array(schema, var)
        if name == "object" and not _OBJECT_KEYWORDS & schema.keys():
            return f"type({var}) is dict"
        if name == "object":
            function = self.object_function(schema, with_combinators=False)
            return None if function is None else f"{function}({var})"
        return None

    def _string(self, schema: dict[str, Any], var: str) -> str | None:
        lengths = self._counted(schema, "minLength", "maxLength", f"len({var})")
        pattern = schema.get("pattern")
        allowed = _allowed_strings(schema)
        if lengths is None or pattern not in (None, IDENTIFIER_PATTERN) or allowed == frozenset():
            return None
        tests = [f"type({var}) is str"]
        if allowed is not None:
            tests.append(f"{var} in {self.const(allowed)}")
        tests.extend(lengths)
        if pattern is not None:
            tests.append(f"{var}.isprintable()")
        return _all(tests)

    def _number(self, schema: dict[str, Any], var: str, *, integer: bool) -> str | None:
        kind = f"type({var}) is int" if integer else f"type({var}) in {self.const((int, float))}"
        bounds = self._bounds(schema, var, _NUMBER_BOUNDS, _is_number)
        return None if bounds is None else _all([kind, *bounds])

    def _array(self, schema: dict[str, Any], var: str) -> str | None:
        counts = self._counted(schema, "minItems", "maxItems", f"len({var})")
        item = f"x{len(self.namespace)}"  # one name per nesting level
        self.namespace[item] = None  # reserved, so no constant takes the name
        each = self.test(schema.get("items", True), item)
        if counts is None or each is None:
            return None
        tests = [f"type({var}) is list", *counts]
        if each != "True":
            tests.append(f"all({each} for {item} in {var})")
        return _all(tests)

    def _counted(self, schema: dict[str, Any], low: str, high: str, size: str) -> list[str] | None:
        """Tests of ``size`` against the bounds ``low`` and ``high``; None if not counts."""
        return self._bounds(schema, size, ((low, "<=", True), (high, "<=", False)), _is_count)

    def _bounds(
        self,
        schema: dict[str, Any],
        var: str,
        keywords: tuple[tuple[str, str, bool], ...],
        valid: Callable[[object], bool],
    ) -> list[str] | None:
        """``var`` against each bound in ``keywords`` (name, operator, whether it is a lower
        bound) that ``schema`` holds, a lower and an upper one chained: ``k1 <= v <= k2``.
        None when a bound is not ``valid`` (draft 4's boolean ``exclusiveMinimum``...)."""
        lows: list[tuple[str, str]] = []
        highs: list[tuple[str, str]] = []
        for keyword, operator, lower in keywords:
            if keyword in schema:
                if not valid(schema[keyword]):
                    return None
                bound = self.const(schema[keyword])
                (lows if lower else highs).append((bound, operator))
        tests = []
        while lows or highs:
            low = "{} {} ".format(*lows.pop()) if lows else ""
            high = " {1} {0}".format(*highs.pop()) if highs else ""
            tests.append(f"{low}{var}{high}")
        return tests

    def object_function(self, schema: dict[str, Any], *, with_combinators: bool) -> str | None:
        """A function proving an object: ``required``, ``properties`` and
        ``additionalProperties``, and with ``with_combinators`` the schema's anyOf, allOf and
        if/then/else too. None when it can prove nothing."""
        if not schema.keys() <= UNDERSTOOD:
            return None
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        if not isinstance(required, list) or not isinstance(properties, dict):
            return None
        combined = self._combinators(schema, "value") if with_combinators else []
        if combined is None:
            return None
        extra = self.test(schema.get("additionalProperties", True), "item")
        counted = extra != "True"
        # A missing required field raises KeyError, and extra fields show in the count of the
        # fields found: both cheaper than comparing the keys with sets.
        found = sum(name in properties for name in set(required))
        body = [f"found = {found}"] if counted else []
        for name in dict.fromkeys(required):
            if name not in properties:
                body += [f"if {self.const(name)} not in value:", "    return False"]
        for name, sub in properties.items():
            lines = self._property(name, sub, required=name in required, counted=counted)
            if lines is None:
                return None
            body.extend(lines)
        if counted:
            body += ["if len(value) != found:", *self._extras(extra, frozenset(properties))]
        body.append(f"return {_all(combined) if combined else 'True'}")
        return self.function(
            "if type(value) is not dict:",
            "    return False",
            "try:",
            *(f"    {line}" for line in body),
            "except KeyError:",
            "    return False",
        )

    def _extras(self, extra: str | None, properties: frozenset[str]) -> list[str]:
        if extra is None:
            return ["    return False"]
        return [
            f"    for name in value.keys() - {self.const(properties)}:",
            "        item = value[name]",
            f"        if not ({extra}):",
            "            return False",
        ]

    def _property(
        self, name: str, schema: object, *, required: bool, counted: bool
    ) -> list[str] | None:
        key = self.const(name)
        test = self.test(schema, "v")
        if test is None:
            # Proves nothing: a required field makes the object unprovable.
            return None if required else [f"if {key} in value:", "    return False"]
        if required:
            return [f"v = value[{key}]", f"if not ({test}):", "    return False"]
        return [
            f"v = value.get({key}, MISSING)",
            "if v is not MISSING:",
            f"    if not ({test}):",
            "        return False",
            *(["    found += 1"] if counted else []),
        ]

    def _combinators(self, schema: dict[str, Any], var: str) -> list[str] | None:
        """Tests of the whole value from anyOf, allOf and if/then/else; None if one proves
        nothing."""
        tests: list[str] = []
        if "anyOf" in schema:
            branches = [self.test(branch, var) for branch in _as_list(schema["anyOf"])]
            provable = [branch for branch in branches if branch is not None]
            if not provable:
                return None
            tests.append(_any(provable))
        if "allOf" in schema:
            parts = [self.test(part, var) for part in _as_list(schema["allOf"])]
            if not parts or None in parts:
                return None
            tests.extend(part for part in parts if part is not None)
        if ("then" in schema or "else" in schema) and "if" not in schema:
            return None  # ignored by the standard; not worth trusting every validator on it
        if "if" in schema:
            condition = self._decide(schema["if"], var)
            then = self.test(schema.get("then", True), var) or "False"
            otherwise = self.test(schema.get("else", True), var) or "False"
            if condition is None:
                return None
            tests.append(f"(({then}) if ({condition}) else ({otherwise}))")
        return tests

    def _decide(self, schema: object, var: str) -> str | None:
        """An exact verdict for an ``if`` schema: only ``required`` and string ``const``s in
        ``properties``, judged as fastjsonschema judges them (``isinstance``, not ``type``)."""
        if not isinstance(schema, dict) or not schema.keys() <= _DECIDABLE:
            return None
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        if not isinstance(required, list) or not isinstance(properties, dict):
            return None
        tests = [f"{var}.keys() >= {self.const(frozenset(required))}"]
        for name, sub in properties.items():
            if not isinstance(sub, dict) or not sub.keys() <= ANNOTATIONS | {"const"}:
                return None
            if type(sub.get("const")) is not str:
                return None
            key, const = self.const(name), self.const(sub["const"])
            field = f"{var}[{key}]"
            tests.append(
                f"({key} not in {var} or (isinstance({field}, str) and {field} == {const}))"
            )
        return f"(not isinstance({var}, dict) or {_all(tests)})"


# Each bound keyword, its operator, and whether it bounds from below: ``minimum <= value``.
_NUMBER_BOUNDS = (
    ("minimum", "<=", True),
    ("maximum", "<=", False),
    ("exclusiveMinimum", "<", True),
    ("exclusiveMaximum", "<", False),
)


def _allowed_strings(schema: dict[str, Any]) -> frozenset[str] | None:
    """The strings ``enum`` and ``const`` both allow; None when neither is given."""
    allowed: frozenset[str] | None = None
    if "enum" in schema:
        members = schema["enum"] if isinstance(schema["enum"], list) else []
        allowed = frozenset(member for member in members if type(member) is str)
    if "const" in schema:
        const = frozenset([schema["const"]] if type(schema["const"]) is str else [])
        allowed = const if allowed is None else allowed & const
    return allowed


def _all(tests: list[str]) -> str:
    if len(tests) < 2:
        return tests[0] if tests else "True"
    return "(" + " and ".join(tests) + ")"


def _any(tests: list[str]) -> str:
    return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and value == value  # NaN is not equal to itself


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
