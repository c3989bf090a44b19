"""API bearer tokens: random secrets, configured only as SHA-256 hashes with their scopes.

A configured entry reads ``sha256:<64 hex digits>:<scopes joined by +>``, for example
``sha256:3f0c...e1:read+ingest``. A token is 256 random bits, so a fast hash is enough: its
preimage cannot be searched for, and the configuration never holds a usable secret. Standard
library only: settings validation and the CLI use it without importing the web stack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

READ = "read"
INGEST = "ingest"
ADMIN = "admin"
SCOPES = (READ, INGEST, ADMIN)
HASH_NAME = "sha256"
# A recognisable prefix lets secret scanners (and people) tell a callpulse token at a glance.
TOKEN_PREFIX = "cp_"  # noqa: S105  # a public prefix, not a secret
TOKEN_BYTES = 32
_DIGEST_HEX_LEN = 64


class TokenConfigError(ValueError):
    """A token entry that cannot be used; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class TokenEntry:
    digest_hex: str
    scopes: frozenset[str]

    @property
    def line(self) -> str:
        return f"{HASH_NAME}:{self.digest_hex}:{'+'.join(s for s in SCOPES if s in self.scopes)}"


def new_token() -> str:
    """A fresh random token: 256 bits from the OS, URL-safe (it may travel in a query)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return _digest(token).hex()


def entry_for(token: str, scopes: Iterable[str]) -> TokenEntry:
    return TokenEntry(hash_token(token), _checked_scopes(list(scopes), where="new token"))


def parse_entry(text: str) -> TokenEntry:
    """One ``sha256:<hex>:<scopes>`` entry; a clear ``TokenConfigError`` otherwise."""
    parts = text.strip().split(":")
    shown = _shown(text)
    if text.strip().startswith(TOKEN_PREFIX):
        raise TokenConfigError(
            f"token entry {shown}: this looks like a token itself; configure its hash line "
            "(`callpulse token` prints both) and keep the token with its client"
        )
    if len(parts) != 3 or parts[0] != HASH_NAME:
        raise TokenConfigError(
            f"token entry {shown}: expected 'sha256:<64 hex digits>:<scopes joined by +>'"
        )
    digest_hex = parts[1].lower()
    if len(digest_hex) != _DIGEST_HEX_LEN or any(c not in "0123456789abcdef" for c in digest_hex):
        raise TokenConfigError(f"token entry {shown}: the hash must be 64 hex digits")
    return TokenEntry(
        digest_hex, _checked_scopes(parts[2].split("+"), where=f"token entry {shown}")
    )


def split_entries(text: str) -> list[str]:
    """Entries from a JSON list, or a list separated by commas or new lines.

    Blank items and ``#`` comments (whole lines, or after an entry) are ignored, so the same
    text works in an environment variable and in a tokens file.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise TokenConfigError(f"tokens: not a valid JSON list ({exc})") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TokenConfigError("tokens: a JSON value must be a list of strings")
        return [i.strip() for i in items if i.strip()]
    entries = []
    for line in stripped.splitlines():
        for item in line.split("#", 1)[0].split(","):
            if item.strip():
                entries.append(item.strip())
    return entries


def load_entries(lines: Iterable[str], file: Path | None = None) -> tuple[TokenEntry, ...]:
    """Configured entries (already split) plus those of a tokens file, if one is named."""
    entries = [parse_entry(line) for line in lines]
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenConfigError(f"tokens file {file}: {exc.strerror or exc}") from None
        entries.extend(parse_entry(line) for line in split_entries(text))
    return tuple(entries)


class TokenTable:
    """Which scopes a presented token carries; ``None`` for an unknown token."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = [(bytes.fromhex(e.digest_hex), e.scopes) for e in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def scopes_for(self, token: str) -> frozenset[str] | None:
        digest = _digest(token)
        found: set[str] | None = None
        # Every entry is compared, in constant time each: how long this takes says nothing
        # about which entry (if any) matched.
        for expected, scopes in self._entries:
            if hmac.compare_digest(digest, expected):
                found = (found or set()) | scopes
        return None if found is None else frozenset(found)


def grants(scopes: frozenset[str], needed: str) -> bool:
    """``admin`` implies every other scope."""
    return needed in scopes or ADMIN in scopes


def _digest(token: str) -> bytes:
    # "replace": a query parameter can carry lone surrogates, which no real token contains.
    return hashlib.sha256(token.encode("utf-8", errors="replace")).digest()


def _checked_scopes(names: list[str], *, where: str) -> frozenset[str]:
    scopes = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        what = f"unknown scope(s) {', '.join(unknown)}" if unknown else "no scope"
        raise TokenConfigError(f"{where}: {what}; scopes are {', '.join(SCOPES)}")
    return scopes


def _shown(text: str) -> str:
    # An entry pasted by mistake might be a raw token: show only enough to find the line.
    text = text.strip()
    return repr(text[:12] + "...") if len(text) > 12 else repr(text)
