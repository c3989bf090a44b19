"""The queue configuration file (YAML) into the core's ``CentreConfig``."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.kpi.config import CentreConfig, ConfigError


def load_centre_config(path: Path | None) -> CentreConfig:
    """Defaults serve a new user when no file is given; a bad file stops the start."""
    if path is None:
        return CentreConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"queues config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"queues config {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"queues config {path}: expected a mapping at the top level")
    try:
        return CentreConfig.from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"queues config {path}: {exc}") from None
