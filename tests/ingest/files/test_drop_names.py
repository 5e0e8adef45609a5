"""Pure pieces of the drop directory: names that always fit NAME_MAX, refused names, block-wise record splitting."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.files.container import RecordSplitter, split_records
from ingest.files.dropfs import NAME_MAX, fit
from ingest.files.source import display_name
from ingest.files.watch import name_problem


def test_short_names_are_kept_and_long_ones_fit_with_their_suffix() -> None:
    assert fit("a_CDSS_20240514133511.txt", ".reason") == "a_CDSS_20240514133511.txt.reason"
    long = "9" * 226 + "_CDSS_20240514115800.txt"
    out = fit(long, ".reason")
    assert len(os.fsencode(out)) <= NAME_MAX and out.endswith(".reason") and out.startswith("9" * 200)
    assert fit(long.replace("9", "8", 1), ".reason") != out  # the hash keeps different long names apart


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=300),
       st.sampled_from(["", ".reason", ".txt"]), st.sampled_from(["", "0123456789ab"]))
def test_fit_always_fits_and_stays_valid_text(name: str, suffix: str, tag: str) -> None:
    out = fit(name, suffix, tag=tag)
    assert len(os.fsencode(out)) <= NAME_MAX and out.endswith(suffix)
    out.encode("utf-8")  # no half character left behind


@pytest.mark.parametrize(("name", "refused"), [
    ("140100000001_CDSS_20240514133511.txt", False),
    ("..140100000001_CDSS_20240514133511.txt", True),
    ("x\nERROR forged_CDSS_20240514133511.txt", True),
    (os.fsdecode(b"\xff\xfe_CDSS_20240514133511.txt"), True),
    ("a\\140100000001_CDSS_20240514133511.txt", True),
])
def test_names_refused_before_their_content_is_read(name: str, refused: bool) -> None:
    assert (name_problem(name) is not None) == refused


def test_display_names_are_storable_and_escape_bytes_that_are_not_utf8() -> None:
    assert display_name(os.fsdecode(b"\xff\xfeabc.txt")) == "\\xff\\xfeabc.txt"
    assert display_name("plain.txt") == "plain.txt"


@given(st.text(st.sampled_from("ab;~ \n\r\t\x00中"), max_size=300), st.integers(1, 40))
def test_block_wise_splitting_matches_splitting_at_once(body: str, block: int) -> None:
    # The reference: the whole body split in one block.
    whole = RecordSplitter(body, block=len(body) + 1)
    expected = [row for rows in whole for row in rows]
    small = RecordSplitter(body, block=block)
    assert [row for rows in small for row in rows] == expected
    assert small.rest == whole.rest
    assert split_records(body) == (expected, whole.rest)
