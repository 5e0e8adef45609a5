"""Loading the registry file: YAML in, a validated `Registry` out, errors naming the file, the entry and the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from minewatch.errors import ConfigError
from minewatch.registry.models import Registry
from minewatch.validation import describe


def load_registry(path: Path) -> tuple[Registry, str]:
    """Load and validate a registry file; returns the registry and the file's sha256.

    Raises ConfigError naming the file, the entry and the problem.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read registry: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the registry must be a mapping with a 'mines' list")
    try:
        reg = Registry.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source=str(path), what="registry", data=data, label="code",
                                   model=Registry)) from exc
    return reg, hashlib.sha256(raw).hexdigest()
