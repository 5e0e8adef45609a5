"""A CDDY point's relation string: groups `X-<point>-<name>:Y-<point>` joined by `◇`."""

from __future__ import annotations

import re

from ingest.files.records import Relation

SEPARATOR = "◇"

# B interlock, G linked air door, K control, H protection, Z main/standby, D power-off,
# T regulation (formats.md).
RELATION_KINDS = frozenset("BGKZDHT")

# Not a hot path (a CDDY file has one row per point), so a regex is the clearest statement.
# Whitespace is tolerated around every token; the colon may be full-width (Chinese input
# methods produce it). Point codes cannot contain `-` or `:`; the name may contain `-`.
_GROUP = re.compile(
    r"""
    \s*(?P<kind>[A-Z])\s*-\s*(?P<source>[^\s:：-]+)\s*-\s*(?P<name>.*?)\s*
    [:：]\s*(?P<target_kind>[A-Z])\s*-\s*(?P<target>[^\s:：-]+)\s*
    """,
    re.VERBOSE,
)


class RelationSyntaxError(ValueError):
    """A relation group does not have the `X-<point>-<name>:Y-<point>` shape."""


def parse_relations(text: str) -> tuple[Relation, ...]:
    """All relation groups of `text` in order; empty text (or only separators) gives ().

    Raises `RelationSyntaxError` naming the first malformed group.
    """
    out: list[Relation] = []
    for group in text.split(SEPARATOR):
        if not group.strip():
            continue
        match = _GROUP.fullmatch(group)
        if match is None:
            raise RelationSyntaxError(f"malformed relation group {group.strip()!r}")
        kind = match["kind"]
        if kind not in RELATION_KINDS:
            raise RelationSyntaxError(
                f"unknown relation kind {kind!r} in {group.strip()!r} (allowed: {''.join(sorted(RELATION_KINDS))})"
            )
        out.append(Relation(kind, match["source"], match["name"], match["target"], match["target_kind"]))
    return tuple(out)


def render_relations(relations: tuple[Relation, ...] | list[Relation]) -> str:
    """The inverse of `parse_relations`, for writers."""
    return SEPARATOR.join(f"{r.kind}-{r.source_point}-{r.name}:{r.target_kind}-{r.target_point}" for r in relations)
