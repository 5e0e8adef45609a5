"""Throughput of parse_file on synthetic CDSS files (UTF-8 LF, CRLF, GBK), best of 5, CPU time."""
import sys
import time
from datetime import UTC, datetime, timedelta

from ingest.files import CdssRecord, Header, parse_file, write_file

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
mine = "610821003303"
t0 = datetime(2024, 5, 14, 5, 0, tzinfo=UTC)
header = Header(mine, "某某煤矿", "KJ95X", "安全监控系统", "某某公司", None, t0)
# 2 000 points each reporting every 10 s: 50 distinct data times per 100 000 rows
recs = [CdssRecord(f"{mine}01MN0001{i % 2000:08d}", "甲烷", f"11301回风巷T{i % 7}", (i % 100) / 100,
                   "%CH4", 0, t0 + timedelta(seconds=(i // 2000) * 10)) for i in range(rows)]
for label, newline, enc in [("utf-8 LF", "\n", "utf-8"), ("utf-8 CRLF", "\r\n", "utf-8"), ("gbk LF", "\n", "gbk")]:
    name, data = write_file("CDSS", header, recs, newline=newline, encoding=enc)
    best = float("inf")
    for _ in range(5):
        s = time.process_time()
        pf = parse_file(name, data)
        e = time.process_time() - s
        best = min(best, e)
    assert len(pf.records) == rows and not pf.errors and pf.encoding == enc
    print(f"{label:10s} {len(data)/1e6:5.1f} MB  best {best*1e3:5.0f} ms = {rows/best:>9,.0f} rows/s")
# the machine's ceiling in the same run: decode + split('~') + split(';') and nothing else
name, data = write_file("CDSS", header, recs)
best = float("inf")
for _ in range(5):
    s = time.process_time()
    for chunk in data.decode().split("~"):
        chunk.split(";")
    best = min(best, time.process_time() - s)
print(f"ceiling (decode + split only): {rows/best:,.0f} rows/s")
