"""CDDY relation strings."""

from __future__ import annotations

import pytest

from ingest.files.records import Relation
from ingest.files.relations import RelationSyntaxError, parse_relations, render_relations

P1 = "61082100330301MN0001T0101"
K1 = "61082100330301KG1009T0102"
K2 = "61082100330301KG1001T0103"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("  ", ()),
        (f"D-{P1}-甲烷断电:K-{K1}", (Relation("D", P1, "甲烷断电", K1, "K"),)),
        (
            f"D-{P1}-甲烷断电:K-{K1}◇B-{P1}-风电闭锁:K-{K2}",
            (Relation("D", P1, "甲烷断电", K1, "K"), Relation("B", P1, "风电闭锁", K2, "K")),
        ),
        # blanks anywhere between tokens, a full-width colon, a stray trailing separator
        (f" D - {P1} - 甲烷 断电 ： K - {K1} ◇ ", (Relation("D", P1, "甲烷 断电", K1, "K"),)),
        # the name may contain `-`
        (f"G-{P1}-风门-1:G-{K2}", (Relation("G", P1, "风门-1", K2, "G"),)),
        # an empty name
        (f"Z-{P1}-:Z-{K2}", (Relation("Z", P1, "", K2, "Z"),)),
        *[(f"{k}-{P1}-x:K-{K1}", (Relation(k, P1, "x", K1, "K"),)) for k in "BGKZDHT"],
    ],
)
def test_parse(text: str, expected: tuple[Relation, ...]) -> None:
    assert parse_relations(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"X-{P1}-未知:K-{K1}",  # unknown kind
        f"d-{P1}-甲烷断电:K-{K1}",  # lower-case kind
        f"D-{P1}-甲烷断电",  # no target
        f"D-{P1}:K-{K1}",  # no name part
        f"D{P1}-甲烷断电:K-{K1}",  # no `-` after the kind
        f"D-{P1}-甲烷断电:{K1}",  # no target kind
        f"D-{P1}-甲烷断电:K-",  # empty target point
        f"D-{P1}-甲烷断电:K-{K1}◇B-{P1}",  # second group malformed
        f"D-{P1}-甲烷断电:K-{K1} extra",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(RelationSyntaxError):
        parse_relations(text)


def test_render_parses_back() -> None:
    relations = (Relation("D", P1, "甲烷断电", K1, "K"), Relation("B", P1, "风电闭锁", K2, "K"))
    text = render_relations(relations)
    assert text == f"D-{P1}-甲烷断电:K-{K1}◇B-{P1}-风电闭锁:K-{K2}"
    assert parse_relations(text) == relations
