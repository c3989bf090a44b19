"""The adapters' configuration file (``CALLPULSE_ADAPTERS_CONFIG``, YAML or JSON).

Every section is optional::

    asterisk:
      agent_aliases: {SIP/1001: alice}     # interface -> member name (see docs/ADAPTERS.md)
    twilio:
      activity_states: {Training: paused}  # added to the defaults, names case-insensitive
      agent_field: WorkerName              # or WorkerSid
      worker_queues_attribute: routing.skills
    generic:
      my-pbx: {...}                        # callpulse.adapters.generic

A bad value stops the start with a message naming the key, like the queue configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callpulse.adapters.generic import GenericMapping, MappingConfigError, parse_mapping
from callpulse.adapters.twilio import TwilioConfig, activity_states
from stream.validation import EventValidator

SECTIONS = frozenset({"asterisk", "twilio", "generic"})
TWILIO_KEYS = frozenset({"activity_states", "agent_field", "worker_queues_attribute"})
AGENT_FIELDS = frozenset({"WorkerName", "WorkerSid"})


class AdapterConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AdaptersConfig:
    agent_aliases: dict[str, str] = field(default_factory=dict)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    generic: dict[str, GenericMapping] = field(default_factory=dict)


def load_adapters_config(path: Path | None) -> AdaptersConfig:
    if path is None:
        return AdaptersConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AdapterConfigError(f"adapters configuration {path}: {exc}") from None
    try:
        return adapters_config(data)
    except (MappingConfigError, ValueError) as exc:
        raise AdapterConfigError(f"adapters configuration {path}: {exc}") from None


def adapters_config(data: object) -> AdaptersConfig:
    if not isinstance(data, dict):
        raise AdapterConfigError("the adapters configuration is a mapping of sections")
    unknown = set(data) - SECTIONS
    if unknown:
        raise AdapterConfigError(f"unknown section(s): {', '.join(sorted(map(str, unknown)))}")
    asterisk = _section(data, "asterisk")
    aliases = asterisk.get("agent_aliases") or {}
    if not isinstance(aliases, dict):
        raise AdapterConfigError("asterisk.agent_aliases: a mapping of interface -> member name")
    event_types = EventValidator().event_types
    generic = _section(data, "generic")
    return AdaptersConfig(
        agent_aliases={str(k): str(v) for k, v in aliases.items()},
        twilio=_twilio(_section(data, "twilio")),
        generic={
            str(name): parse_mapping(str(name), raw, event_types) for name, raw in generic.items()
        },
    )


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise AdapterConfigError(f"{name}: must be a mapping")
    return section


def _twilio(section: dict[str, Any]) -> TwilioConfig:
    unknown = set(section) - TWILIO_KEYS
    if unknown:
        raise AdapterConfigError(f"twilio: unknown key(s) {', '.join(sorted(unknown))}")
    agent_field = str(section.get("agent_field", "WorkerName"))
    if agent_field not in AGENT_FIELDS:
        raise AdapterConfigError(f"twilio.agent_field: one of {', '.join(sorted(AGENT_FIELDS))}")
    overrides = section.get("activity_states") or {}
    if not isinstance(overrides, dict):
        raise AdapterConfigError("twilio.activity_states: a mapping of activity name -> state")
    queues = section.get("worker_queues_attribute")
    return TwilioConfig(
        activity_states=activity_states({str(k): str(v) for k, v in overrides.items()}),
        agent_field=agent_field,
        worker_queues_attribute=None if queues is None else str(queues),
    )
