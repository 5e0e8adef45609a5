"""Which text encoding an upload file uses: UTF-8 (with or without BOM), else GBK / GB18030."""

from __future__ import annotations

from ingest.files.errors import FileRejected

# Reported names, in the order they are tried. UTF-8 is tried strictly first because a GBK
# file is almost never valid UTF-8, while the reverse is not true (GB18030 decodes nearly any
# byte string), so the order is what makes the detection reliable.
ENCODINGS: tuple[str, ...] = ("utf-8", "utf-8-sig", "gbk", "gb18030")

_BOM = b"\xef\xbb\xbf"


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and the encoding it was read with (one of `ENCODINGS`).

    Detection is reliable for real files, whose headers carry several Chinese names, but a
    short GBK text can happen to be valid UTF-8 (GBK `C6 A4` 皮 is UTF-8 `Ƥ`). A source whose
    encoding is known can therefore name it (`"utf-8"` or `"gbk"` / `"gb18030"`); then only
    that encoding is tried (a UTF-8 BOM is still honoured).
    Raises `FileRejected("bad_encoding")` when no candidate decodes the bytes strictly.
    """
    if encoding is not None:
        return _decode_as(data, encoding)
    if data.startswith(_BOM):
        try:
            return data[len(_BOM) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected("bad_encoding", f"UTF-8 BOM but invalid UTF-8: {exc}") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # GBK first so that the common case is reported by its everyday name; GB18030 is the
    # superset some newer systems write (four-byte sequences for rare characters).
    for name in ("gbk", "gb18030"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            continue
    raise FileRejected("bad_encoding", "neither UTF-8 nor GBK/GB18030")


def _decode_as(data: bytes, encoding: str) -> tuple[str, str]:
    name = encoding.lower().replace("_", "-")
    if name in ("utf-8", "utf8", "utf-8-sig"):
        if data.startswith(_BOM):
            data, name = data[len(_BOM) :], "utf-8-sig"
        else:
            name = "utf-8"
        codec = "utf-8"
    elif name in ("gbk", "gb18030"):
        codec = name
    else:
        raise FileRejected("bad_encoding", f"unsupported encoding {encoding!r} (allowed: {ENCODINGS})")
    try:
        return data.decode(codec), name
    except UnicodeDecodeError as exc:
        raise FileRejected("bad_encoding", f"not valid {name}: {exc}") from exc
