"""Pydantic validation errors as a person reads them: the file, the key, the problem, what is allowed.

Every file Minewatch validates at load (rule packs, scenarios, routing, settings, the
registry) reports its errors through `describe`, so they all read alike:

    rules/packs/mine.yaml: invalid rule pack (2 error(s))
      rules/packs/mine.yaml: events.scope: got 'district'; allowed values: 'point', 'face' or 'mine'
      rules/packs/mine.yaml: episodes.exclude_bits: unknown key; allowed keys: exclude, min_duration

One line per error, each starting `file: key:` so that an editor or grep can jump to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

Loc = tuple[int | str, ...]

TOP_LEVEL = "(top level)"
# Long values are cut: a message names the value, it does not reproduce a file.
_MAX_GIVEN = 80


def describe(
    exc: ValidationError,
    *,
    source: str,
    what: str,
    data: object = None,
    label: str | None = None,
    model: type[BaseModel] | None = None,
    locate: Callable[[Loc], str] | None = None,
) -> str:
    """The errors of `exc` as lines naming `source` (a file, or e.g. "environment"), the key
    path (`a.b[0].c`), the problem and, where there is a closed set, the allowed values.

    `data` is the input that was validated; with `label`, a list entry is named by that key of
    it as well (`events[0](kind=silence).at`) and the tags pydantic puts in the path of a
    discriminated union are left out. `model` lists the keys allowed where an unknown key was
    found. `locate` replaces the key path (settings name the environment variable)."""
    lines = [f"{source}: invalid {what} ({exc.error_count()} error(s))"]
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        where = locate(loc) if locate is not None else key_path(loc, data, label)
        lines.append(f"  {source}: {where or TOP_LEVEL}: {problem(err, loc, model)}")
    return "\n".join(lines)


def key_path(loc: Loc, data: object = None, label: str | None = None) -> str:
    """`a.b[0].c` for a pydantic location; see `describe` for `data` and `label`."""
    out = ""
    node = data
    for item in loc:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            named = node.get(label) if label is not None and isinstance(node, dict) else None
            out += f"[{item}]" + (f"({label}={named})" if isinstance(named, str | int) else "")
            continue
        if label is not None and isinstance(node, dict) and item not in node and node.get(label) == item:
            continue  # the discriminator's own level in pydantic's path
        node = node.get(item) if isinstance(node, dict) else None
        out += f".{item}" if out else str(item)
    return out


def problem(err: Mapping[str, Any], loc: Loc = (), model: type[BaseModel] | None = None) -> str:
    """What is wrong, with the allowed values or keys when pydantic knows them."""
    kind, given, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, loc[:-1]) if model is not None else []
        return "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    if kind in ("literal_error", "enum"):
        return f"got {_given(given)}; allowed values: {ctx['expected']}"
    if kind == "union_tag_invalid":
        return (f"unknown {str(ctx.get('discriminator', 'tag')).strip(chr(39))} {_given(ctx.get('tag'))}; "
                f"allowed values: {ctx.get('expected_tags')}")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if isinstance(given, Mapping | list | tuple | set) or kind == "missing":
        return msg  # a whole section: its keys are named in the message
    return f"{msg} (got {_given(given)})"


def allowed_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the model at `loc` (within `model`) accepts, by walking the field types. In a
    discriminated union, the tag pydantic puts in the path picks the member."""
    candidates = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for m in candidates for k, f in m.model_fields.items() if (f.alias or k) == part), None)
        if field is not None:
            candidates = _models_in(field.annotation)
            continue
        tagged = [m for m in candidates if any(part in get_args(f.annotation) for f in m.model_fields.values())]
        candidates = tagged if tagged else []
    if len(candidates) != 1:
        return []
    return [f.alias or k for k, f in candidates[0].model_fields.items()]


def _models_in(tp: object) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in get_args(tp) for m in _models_in(arg)]


def _given(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_GIVEN else text[:_MAX_GIVEN - 1] + "…"
