"""Loading the registry file: YAML in, a validated `Registry` out, errors naming the file, the entry and the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from minewatch.errors import ConfigError
from minewatch.registry.models import Registry


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """Render a pydantic error location with the entry's code, so the message names the entry."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and 0 <= item < len(node):
            node = node[item]
            code = node.get("code") if isinstance(node, dict) else None
            parts.append(f"[{item}]" + (f"(code={code})" if code else ""))
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(f".{item}")
    return "".join(parts).lstrip(".")


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
        lines = [f"{path}: invalid registry:"]
        for err in exc.errors():
            where = _where(tuple(err["loc"]), data)
            allowed = err.get("ctx", {}).get("expected")
            lines.append(f"  {where or '<root>'}: {err['msg']}" + (f" (allowed: {allowed})" if allowed else ""))
        raise ConfigError("\n".join(lines)) from exc
    return reg, hashlib.sha256(raw).hexdigest()
