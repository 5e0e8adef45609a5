"""One renderer of pydantic validation errors: file, key path, problem, allowed values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minewatch.validation import describe, key_path

ROOT = Path(__file__).resolve().parents[2]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rise(_Strict):
    kind: Literal["rise"]
    to: float


class Silence(_Strict):
    kind: Literal["silence"]
    point: str


class Doc(_Strict):
    scope: Literal["point", "face", "mine"] = "point"
    count: int = 0
    events: list[Annotated[Rise | Silence, Field(discriminator="kind")]] = []


def _error(given: object, **kwargs: object) -> str:
    with pytest.raises(ValidationError) as info:
        Doc.model_validate(given)
    return describe(info.value, source="conf/doc.yaml", what="document", **kwargs)  # type: ignore[arg-type]


def test_every_line_names_the_file_and_the_key() -> None:
    text = _error({"scope": "district", "count": "many"})
    lines = text.splitlines()
    assert lines[0] == "conf/doc.yaml: invalid document (2 error(s))"
    assert "  conf/doc.yaml: scope: got 'district'; allowed values: 'point', 'face' or 'mine'" in lines
    assert any(line.startswith("  conf/doc.yaml: count: ") and "(got 'many')" in line for line in lines)


def test_unknown_keys_list_the_allowed_keys_also_inside_a_tagged_union() -> None:
    text = _error({"scop": 1, "events": [{"kind": "rise", "to": 1, "speed": 2}]}, model=Doc)
    assert "conf/doc.yaml: scop: unknown key; allowed keys: scope, count, events" in text
    assert "events[0].rise.speed: unknown key; allowed keys: kind, to" in text
    assert "unknown key" in _error({"scop": 1})  # without a model: no list, still named


def test_list_entries_are_named_by_their_label_and_tags_left_out() -> None:
    data = {"events": [{"kind": "silence", "point": "P1"}, {"kind": "rise"}]}
    text = _error(data, data=data, label="kind")
    assert "conf/doc.yaml: events[1](kind=rise).to: Field required" in text
    bad = {"events": [{"kind": "fall"}]}
    assert "events[0](kind=fall): unknown kind 'fall'; allowed values: 'rise', 'silence'" in _error(
        bad, data=bad, label="kind")


def test_top_level_long_values_and_custom_locations() -> None:
    with pytest.raises(ValidationError) as info:
        Doc.model_validate([])
    assert "conf/doc.yaml: (top level): " in describe(info.value, source="conf/doc.yaml", what="document")
    long = "x" * 500
    assert len(_error({"scope": long}).splitlines()[1]) < 200
    text = _error({"count": "many"}, locate=lambda loc: "MINEWATCH_" + str(loc[0]).upper())
    assert "conf/doc.yaml: MINEWATCH_COUNT: " in text
    assert key_path(("a", 0, "b", 2)) == "a[0].b[2]"


# Modules that still render on their own, each with its reason. Everything else that
# validates a file goes through minewatch.validation.describe.
_PENDING = {
    "ingest/files/cli.py": "renders command-line options (--chunk-rows), not a file's keys",
}


def test_no_other_module_renders_validation_errors() -> None:
    own = []
    for package in ("minewatch", "rules", "alerting", "simulators", "ingest"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel != "minewatch/validation.py" and rel not in _PENDING and ".errors()" in path.read_text("utf-8"):
                own.append(rel)
    assert own == []
