"""Encoding detection: UTF-8 with or without BOM first, GBK / GB18030 as the fallback."""

from __future__ import annotations

import pytest

from ingest.files.encoding import decode
from ingest.files.errors import FileRejected

TEXT = "610821003303;某煤矿;11301回风巷;甲烷;℃◇~\n||"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("gbk"), "gbk"),
        # 𠀀 exists only in GB18030 (four bytes); GBK cannot decode the file
        ((TEXT + "𠀀").encode("gb18030"), "gb18030"),
        (b"ascii only~||", "utf-8"),
    ],
)
def test_detected_and_decoded(data: bytes, encoding: str) -> None:
    text, used = decode(data)
    assert used == encoding
    assert text.startswith("610821003303;某煤矿;11301回风巷") or text == "ascii only~||"
    assert "\ufeff" not in text


def test_undecodable_bytes_are_rejected() -> None:
    with pytest.raises(FileRejected) as info:
        decode(b"\xff\xfe\xff\xfe")
    assert info.value.reason == "bad_encoding"


def test_bom_followed_by_invalid_utf8_is_rejected_not_guessed() -> None:
    with pytest.raises(FileRejected) as info:
        decode(b"\xef\xbb\xbf" + "某煤矿".encode("gbk"))
    assert info.value.reason == "bad_encoding"


def test_short_gbk_text_valid_as_utf8_needs_the_encoding_named() -> None:
    data = "皮".encode("gbk")
    assert data == b"\xc6\xa4"
    assert decode(data) == ("Ƥ", "utf-8")  # detection cannot tell
    assert decode(data, "gbk") == ("皮", "gbk")


@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        ("某煤矿".encode(), "UTF-8", ("某煤矿", "utf-8")),
        (b"\xef\xbb\xbf" + "某煤矿".encode(), "utf8", ("某煤矿", "utf-8-sig")),
        ("某煤矿".encode("gbk"), "GBK", ("某煤矿", "gbk")),
        ("某煤矿𠀀".encode("gb18030"), "gb18030", ("某煤矿𠀀", "gb18030")),
    ],
)
def test_named_encoding(data: bytes, encoding: str, expected: tuple[str, str]) -> None:
    assert decode(data, encoding) == expected


@pytest.mark.parametrize(
    ("data", "encoding"),
    [("某煤矿".encode("gbk"), "utf-8"), (b"abc", "latin-1"), ("某煤矿𠀀".encode("gb18030"), "gbk")],
)
def test_named_encoding_that_does_not_fit_is_rejected(data: bytes, encoding: str) -> None:
    with pytest.raises(FileRejected) as info:
        decode(data, encoding)
    assert info.value.reason == "bad_encoding"
