"""The national mine upload files (CDDY, CDSS, FZDY, FZSS, TJSJ, YCBJ): pure parser and writer.

`parse_file(name, data)` turns the bytes of one complete file into typed records plus one
`RecordError` per bad record; `IncompleteFile` means "not finished yet, leave it alone";
`FileRejected.reason` says why a whole file is refused. No IO happens in this package except
in the directory watcher built on top of it.
"""

from ingest.files.errors import REJECT_REASONS, FileFormatError, FileRejected, IncompleteFile
from ingest.files.parse import RECORD_ERROR_REASONS, parse_file, point_code_limit
from ingest.files.records import (
    ABNORMAL_TYPES,
    POWER_TABLE_DC0,
    POWER_TABLE_DC1,
    POWER_TABLES,
    RECORD_TYPES,
    RUN_STATES,
    CddyRecord,
    CdssRecord,
    FzdyRecord,
    FzssRecord,
    Header,
    ParsedFile,
    Record,
    RecordError,
    Relation,
    TjsjRecord,
    YcbjRecord,
)
from ingest.files.write import file_name, render, write_file

__all__ = [
    "ABNORMAL_TYPES",
    "POWER_TABLES",
    "POWER_TABLE_DC0",
    "POWER_TABLE_DC1",
    "RECORD_ERROR_REASONS",
    "RECORD_TYPES",
    "REJECT_REASONS",
    "RUN_STATES",
    "CddyRecord",
    "CdssRecord",
    "FileFormatError",
    "FileRejected",
    "FzdyRecord",
    "FzssRecord",
    "Header",
    "IncompleteFile",
    "ParsedFile",
    "Record",
    "RecordError",
    "Relation",
    "TjsjRecord",
    "YcbjRecord",
    "file_name",
    "parse_file",
    "point_code_limit",
    "render",
    "write_file",
]
