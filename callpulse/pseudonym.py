"""Caller pseudonyms: a keyed hash of the caller id, taken where events enter callpulse.

``ph1:`` followed by the first 32 hex digits (128 bits) of HMAC-SHA256(key, caller). The same
caller under the same key always gets the same pseudonym, so a repeat caller is still seen as
one; without the key nobody can test a guessed phone number against it (a plain hash of a
phone number is reversed by trying every number). A value that already is a pseudonym passes
unchanged: the API pseudonymises before it publishes to the input topic, and the worker's
validate stage then sees the same events again, as it sees those of every other producer.

Dead-letter records keep the rejected input for people to inspect; ``scrub_rejection`` replaces
every ``"caller"`` value in it (at any depth, and in undecodable text) the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

import orjson

from callpulse.settings import Settings
from stream.decode import Rejection

PREFIX = "ph1:"
HEX_CHARS = 32
FIELD = "caller"
# Only `callpulse dev` may use this key: it is public, so it protects nothing.
DEV_KEY = "callpulse-dev-pseudonym-key-public-not-secret"
PLACEHOLDER_KEYS = frozenset({"changethis", "changeme", "change-me", "secret", "key", DEV_KEY})
MIN_KEY_CHARS = 16
# Callers whose pseudonym is remembered (repeat callers are common; an HMAC costs ~0.5 µs, a
# look-up a tenth of that). Forgotten all at once when full: at most ~4 MB, and only in
# memory (neither the key nor a caller is ever logged).
KNOWN_CALLERS = 16_384

_PSEUDONYM = re.compile(rf"{re.escape(PREFIX)}[0-9a-f]{{{HEX_CHARS}}}")
# A "caller" member in JSON text: a string (possibly cut short by truncation) or a number.
_CALLER_IN_JSON = re.compile(
    r'("caller"\s*:\s*)("(?:[^"\\]|\\.)*(?:"|$)|-?[0-9][0-9.eE+-]*)', re.DOTALL
)


def is_pseudonym(value: object) -> bool:
    return isinstance(value, str) and _PSEUDONYM.fullmatch(value) is not None


def key_problem(key: str) -> str | None:
    """Why ``key`` must not protect real callers, or ``None`` when it may."""
    if not key:
        return "CALLPULSE_PSEUDONYM_KEY is not set"
    if key.strip().lower() in PLACEHOLDER_KEYS:
        return "CALLPULSE_PSEUDONYM_KEY is a placeholder (or the public development key)"
    if len(key) < MIN_KEY_CHARS:
        return f"CALLPULSE_PSEUDONYM_KEY is shorter than {MIN_KEY_CHARS} characters"
    return None


class Pseudonymiser:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a pseudonym key must not be empty")
        # Keyed once: copying the keyed state costs less than keying each caller anew.
        self._keyed = hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)
        self._known: dict[str, str] = {}

    def __call__(self, caller: str) -> str:
        known = self._known.get(caller)
        if known is not None:
            return known
        pseudonym = caller if is_pseudonym(caller) else self._hashed(caller)
        if len(self._known) >= KNOWN_CALLERS:
            self._known.clear()
        self._known[caller] = pseudonym
        return pseudonym

    def _hashed(self, caller: str) -> str:
        digest = self._keyed.copy()
        digest.update(caller.encode("utf-8", errors="replace"))
        return PREFIX + digest.hexdigest()[:HEX_CHARS]

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Replace ``event["caller"]`` in place (a validated event's caller is a string)."""
        caller = event.get(FIELD)
        if isinstance(caller, str):
            event[FIELD] = self(caller)
        return event

    def rejection(self, rejection: Rejection) -> Rejection:
        """The rejection with every caller value in its event, raw text and detail replaced."""
        changes: dict[str, Any] = {}
        if rejection.event is not None:
            event = self._scrubbed_value(rejection.event)
            if event is not rejection.event:
                changes["event"] = event
        if rejection.raw is not None and '"caller"' in rejection.raw:
            changes["raw"] = self._scrubbed_text(rejection.raw)
        if f"'{FIELD}'" in rejection.detail and ", got " in rejection.detail:
            # The validator quotes the start of a bad value: it may be a caller's number.
            changes["detail"] = rejection.detail.split(", got ", 1)[0] + ", got a value not shown"
        return replace(rejection, **changes) if changes else rejection

    def _scrubbed_value(self, value: object) -> object:
        try:
            text = orjson.dumps(value).decode("utf-8")
        except TypeError:
            return value  # not serialisable: the dead-letter record will not carry it anyway
        if '"caller"' not in text:
            return value
        scrubbed: object = orjson.loads(self._scrubbed_text(text))
        return scrubbed

    def _scrubbed_text(self, text: str) -> str:
        return _CALLER_IN_JSON.sub(lambda m: m.group(1) + self._json_token(m.group(2)), text)

    def _json_token(self, token: str) -> str:
        if token.startswith('"'):
            try:
                caller = orjson.loads(token if token.endswith('"') else token + '"')
            except orjson.JSONDecodeError:
                caller = token
            if isinstance(caller, str):
                return '"' + self(caller) + '"'
        return '"' + self(token) + '"'  # a number: hash its digits as written


def effective_key(settings: Settings) -> str:
    """The configured key; the public development key when none is (refused by the CLI)."""
    return settings.pseudonym_key.get_secret_value() or DEV_KEY


@lru_cache(maxsize=8)
def pseudonymiser_for_key(key: str) -> Pseudonymiser:
    return Pseudonymiser(key)


def pseudonymiser_for(settings: Settings) -> Pseudonymiser:
    return pseudonymiser_for_key(effective_key(settings))
