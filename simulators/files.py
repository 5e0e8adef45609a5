"""File mode of the simulators: a mine's output as national upload files (CDDY, FZDY, CDSS, FZSS, TJSJ, YCBJ).

What a real safety-monitoring system uploads: the point and station definitions when it
starts (from the registry) and a CDDY again whenever a point's definition changes (a
`Redefinition`: new thresholds from a given instant), then every `cdss_every_s` of simulated
time a CDSS snapshot with
the latest value and status of every point (a point silent for longer than its `max_gap_s`
is left out), every `fzss_every_s` an FZSS with each station's latest state, every
`tjsj_every_s` a TJSJ with each analog point's max / min / average over the interval, and
a YCBJ whenever an abnormal episode (alarm, power-off, calibration, over-range, sensor
fault bits) starts or ends, unless a scenario `hide_alarm` event has the mine leave that
episode out (what `under_reporting`, rules.md §6, looks for). Values and statuses are the
simulator's readings (`simulators.model`), sampled and held; file times are whole seconds
of the mine's zone.

`ticks()` yields what each upload instant carries, so the same snapshots can also be sent
over MQTT (`snapshot_messages`): the acceptance test compares both paths on equal data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ingest.files.records import CddyRecord, CdssRecord, FzdyRecord, FzssRecord, Header, Relation, TjsjRecord, YcbjRecord
from ingest.files.write import write_file
from minewatch.registry import Mine, Registry, Thresholds, load_registry
from minewatch.settings import packaged
from minewatch.timeutil import zone
from simulators.errors import SimulatorError
from simulators.geotech import GEOTECH_TYPES
from simulators.noise import F64, I64
from simulators.render import Message
from simulators.scenario import HideAlarm, load_scenario
from simulators.status import ALARM, CALIBRATING, OVER_RANGE, POWER_OFF, SENSOR_FAULT
from simulators.world import World

# A reading's time is its nominal slot ± 250 ms, so a window's readings may end just past
# the window; snapshots are taken this far behind the newest window to have them all.
_LAG_MS = 1_000
# Status bit -> YCBJ abnormal type (formats.md).
ABNORMAL_OF_BIT: dict[int, str] = {ALARM: "001", POWER_OFF: "002", CALIBRATING: "007", OVER_RANGE: "008",
                                   SENSOR_FAULT: "004"}
TYPE_NAMES: dict[str, str] = {
    "0001": "甲烷", "0011": "高低浓甲烷", "0043": "激光甲烷", "0002": "风速", "0003": "温度", "0004": "一氧化碳",
    "0005": "风压", "0012": "氧气", "0013": "二氧化碳", "0014": "粉尘", "0018": "湿度", "0021": "坝体位移",
    "0029": "库水位", "0030": "浸润线", "0031": "降雨量", "0032": "干滩长度", "0033": "安全超高", "0034": "边坡位移",
    "1001": "局部通风机", "1002": "风门", "1004": "设备开停", "1009": "断电器", "1010": "主通风机", "1011": "馈电",
    "1015": "馈电", "3001": "煤量",
}


class FileOptions(BaseModel):
    """What the simulated system uploads, and how often (simulated seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cdss_every_s: int = Field(default=10, ge=1, le=3600)
    fzss_every_s: int = Field(default=60, ge=1, le=86_400)
    tjsj_every_s: int = Field(default=300, ge=60, le=86_400)
    encoding: Literal["utf-8", "gbk"] = "utf-8"
    newline: Literal["\n", "\r\n"] = "\n"
    system_model: str = "KJ95X"
    system_name: str = "煤矿安全监控系统"
    manufacturer: str = "Minewatch 模拟器"
    # A station reports its power code as mains (AC) in the dc0 scheme (0 DC, 1 AC, 2 fault).
    power_code: int = Field(default=1, ge=0, le=255)


class Redefinition(BaseModel):
    """An operator changes a point's thresholds at `at`: the system uploads a CDDY with the new definitions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: AwareDatetime
    point: str
    thresholds: Thresholds

    @property
    def at_ms(self) -> int:
        return int(self.at.timestamp()) * 1000  # file times are whole seconds


def parse_redefinition(text: str) -> Redefinition:
    """`AT POINT key=value,...` (the command line's `--redefine`), e.g.
    `2024-05-14T09:00:00+08:00 140100000001_01MN0001_T0003 alarm_hi=0.8,poweroff_hi=1.2`."""
    parts = text.split()
    if len(parts) != 3:
        raise SimulatorError(f"--redefine {text!r}: expected 'AT POINT key=value,...'")
    at, point, pairs = parts
    try:
        values = dict(kv.split("=", 1) for kv in pairs.split(","))
        return Redefinition.model_validate({"at": at, "point": point, "thresholds": values})
    except (ValueError, ValidationError) as exc:
        raise SimulatorError(f"--redefine {text!r}: {exc}") from None


@dataclass
class Tick:
    """Everything uploaded at one instant (epoch ms, a whole second)."""

    ts_ms: int
    cdss: list[CdssRecord] = field(default_factory=list)
    fzss: list[FzssRecord] = field(default_factory=list)
    tjsj: list[TjsjRecord] = field(default_factory=list)
    ycbj: list[YcbjRecord] = field(default_factory=list)


@dataclass
class _Episode:
    start: int
    values: list[float] = field(default_factory=list)
    times: list[int] = field(default_factory=list)


@dataclass
class _PointState:
    # Readings not yet consumed or still inside the TJSJ interval, and the last consumed one.
    ts: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    value: F64 = field(default_factory=lambda: np.zeros(0, np.float64))
    status: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    done: int = 0  # how many of the kept readings were already folded into episodes
    last: tuple[int, float, int] | None = None
    open: dict[int, _Episode] = field(default_factory=dict)  # status bit -> episode going on


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(seconds=ms // 1000)  # file times are whole seconds


def single_mine(registry: Registry, code: str) -> Registry:
    """The registry reduced to one mine (a point's readings do not depend on the others)."""
    try:
        mine = registry.mine(code)
    except KeyError:
        raise SimulatorError(f"mine {code!r} is not in the registry") from None
    return registry.model_copy(update={"mines": (mine,)})


def definitions(mine: Mine, at_ms: int, thresholds: Mapping[str, Thresholds] | None = None
                ) -> tuple[list[CddyRecord], list[FzdyRecord]]:
    """The registry's points and stations of `mine` as CDDY / FZDY records with data time `at_ms`.

    `thresholds` overrides the registry's for the points it names (changed definitions).
    """
    when = _dt(at_ms)
    changed = thresholds or {}
    cddy: list[CddyRecord] = []
    for p in mine.points:
        t = changed.get(p.code) or p.effective_thresholds()
        system = p.code[len(mine.code):].lstrip("_")[:2] or "01"
        relations = tuple(Relation(r.kind, p.code, r.name, r.target, "K") for r in p.relations)
        on_off = ("开", "关") if p.value_type == "KG" else (None, None)
        cddy.append(CddyRecord(p.code, system, p.station, p.sensor_type, p.value_type, p.unit or None, p.range_high,
                               p.range_low, t.alarm_hi, t.clear_hi, t.alarm_lo, t.clear_lo, t.poweroff_hi, t.restore_hi,
                               t.poweroff_lo, t.restore_lo, on_off[0], on_off[1], p.location or None, None, None, None,
                               relations, when))
    fzdy = [FzdyRecord(s.code, s.location or None, None, None, None, when) for s in mine.stations]
    return cddy, fzdy


class MineFiles:
    """The uploads of one mine of `world` (build the World on `single_mine(...)` to spare the others)."""

    def __init__(self, world: World, mine_code: str, options: FileOptions | None = None,
                 redefinitions: Sequence[Redefinition] = ()) -> None:
        self.world = world
        self.mine = world.registry.mine(mine_code)
        self.options = options or FileOptions()
        known = {p.code for p in self.mine.points}
        for r in redefinitions:
            if r.point not in known:
                raise SimulatorError(f"redefinition of {r.point!r}: not a point of mine {mine_code}")
        self.redefinitions = sorted(redefinitions, key=lambda r: r.at)
        self.tz = zone(self.mine.timezone)
        points = self.mine.points
        self.analog = np.array([p.value_type == "MN" for p in points], np.bool_)
        self.max_gap_ms = np.array([p.max_gap_s * 1000 for p in points], np.int64)
        self.names = [TYPE_NAMES.get(p.sensor_type, "传感器") for p in points]
        # Scenario `hide_alarm` events, per point index: the YCBJ records the mine leaves out.
        index = {p.code: i for i, p in enumerate(points)}
        self.hidden: dict[int, list[HideAlarm]] = {}
        for e in world.scenario.events:
            if isinstance(e, HideAlarm) and e.point in index:
                self.hidden.setdefault(index[e.point], []).append(e)
        self._reports: list[tuple[int, YcbjRecord]] = []  # abnormal reports waiting for the next upload

    def header(self, ts_ms: int) -> Header:
        o = self.options
        return Header(self.mine.code, self.mine.name, o.system_model, o.system_name, o.manufacturer, None, _dt(ts_ms))

    def ticks(self) -> Iterator[Tick]:
        """Every upload instant of the run with what it carries, in time order."""
        o = self.options
        every = o.cdss_every_s * 1000
        points = [_PointState() for _ in self.mine.points]
        stations: dict[int, tuple[int, int]] = {}  # station index -> (ts, state) of its latest report
        pending: list[tuple[int, int, int]] = []  # station reports not consumed yet: (ts, index, state)
        start, end = self.world.start_ms, self.world.end_ms
        next_tick = -(-start // every) * every
        for group in self.world.windows():
            w = next(x for x in group if x.mine == self.mine.code)
            # Readings before hi are all known now (the last window: everything), so are the
            # snapshots of the ticks before it.
            hi = end if end is not None and w.end_ms >= end else w.end_ms - _LAG_MS
            r = w.readings
            ticks = np.arange(next_tick, hi, every, dtype=np.int64)
            out = [Tick(int(t)) for t in ticks]
            for i, state in enumerate(points):
                mask = r.point == i
                self._point(i, state, r.ts_ms[mask], r.value[mask], r.status[mask].astype(np.int64), ticks, out, hi)
            self._reports.sort(key=lambda x: x[0])
            n = 0
            for tick in out:
                while n < len(self._reports) and self._reports[n][0] <= tick.ts_ms:
                    tick.ycbj.append(msgspec.structs.replace(self._reports[n][1], data_time=_dt(tick.ts_ms)))
                    n += 1
            del self._reports[:n]
            st = w.stations
            pending.extend(zip(st.ts_ms.tolist(), st.station.tolist(), st.state.tolist(), strict=True))
            pending.sort()
            k = 0
            for tick in out:
                while k < len(pending) and pending[k][0] <= tick.ts_ms:
                    ts, idx, state_code = pending[k]
                    stations[idx] = (ts, state_code)
                    k += 1
                if tick.ts_ms % (o.fzss_every_s * 1000) == 0:
                    tick.fzss = [FzssRecord(st.stations[i], s, None, o.power_code, None, _dt(tick.ts_ms))
                                 for i, (_, s) in sorted(stations.items())]
            del pending[:k]
            if len(ticks):
                next_tick = int(ticks[-1]) + every
            yield from out

    def _point(self, i: int, s: _PointState, ts: I64, value: F64, status: I64, ticks: I64, out: list[Tick], hi: int) -> None:
        p = self.mine.points[i]
        all_ts = np.concatenate([s.ts, ts])
        order = np.argsort(all_ts, kind="stable")
        all_ts, all_v, all_s = all_ts[order], np.concatenate([s.value, value])[order], np.concatenate([s.status, status])[order]
        # CDSS: the latest reading at or before each tick, unless the point has gone silent.
        k = np.searchsorted(all_ts, ticks, side="right") - 1
        before = s.last or (np.iinfo(np.int64).min // 2, 0.0, 0)
        at = np.where(k >= 0, all_ts[np.maximum(k, 0)] if all_ts.size else 0, before[0])
        val = np.where(k >= 0, all_v[np.maximum(k, 0)] if all_v.size else 0.0, before[1])
        sts = np.where(k >= 0, all_s[np.maximum(k, 0)] if all_s.size else 0, before[2])
        show = (ticks - at) <= self.max_gap_ms[i]
        name, location, unit = self.names[i], p.location or None, p.unit or None
        for j, v, st in zip(np.flatnonzero(show).tolist(), val[show].tolist(), sts[show].tolist(), strict=True):
            out[j].cdss.append(CdssRecord(p.code, name, location, v, unit, st, _dt(out[j].ts_ms)))
        consumed = int(np.searchsorted(all_ts, hi, side="left"))
        if self.analog[i]:
            self._stats(i, all_ts, all_v, ticks, out)
        # Readings before hi are final; the kept ones that were folded into episodes in an
        # earlier round sort first (they are older than anything new) and are skipped.
        self._episodes(i, s, all_ts[s.done:consumed], all_v[s.done:consumed], all_s[s.done:consumed])
        if consumed:
            s.last = (int(all_ts[consumed - 1]), float(all_v[consumed - 1]), int(all_s[consumed - 1]))
        keep = min(int(np.searchsorted(all_ts, hi - self.options.tjsj_every_s * 1000, side="left")), consumed)
        s.ts, s.value, s.status, s.done = all_ts[keep:], all_v[keep:], all_s[keep:], consumed - keep

    def _stats(self, i: int, ts: I64, value: F64, ticks: I64, out: list[Tick]) -> None:
        p = self.mine.points[i]
        span = self.options.tjsj_every_s * 1000
        for j, tick in enumerate(ticks.tolist()):
            if tick % span:
                continue
            a, b = np.searchsorted(ts, [tick - span, tick], side="left")
            if b <= a:
                continue
            v, t = value[a:b], ts[a:b]
            hi_i, lo_i = int(np.argmax(v)), int(np.argmin(v))
            out[j].tjsj.append(TjsjRecord(p.code, self.names[i], p.location or None, p.unit or None, _dt(tick - span),
                                          _dt(tick), float(v[hi_i]), _dt(int(t[hi_i])), float(v[lo_i]), _dt(int(t[lo_i])),
                                          round(float(v.mean()), 4), _dt(tick)))

    def _episodes(self, i: int, s: _PointState, ts: I64, value: F64, status: I64) -> None:
        for bit, code in ABNORMAL_OF_BIT.items():
            flags = (status & bit) != 0
            if not flags.any() and bit not in s.open:
                continue
            for n in range(ts.size):
                ep = s.open.get(bit)
                if flags[n]:
                    if ep is None:
                        ep = s.open[bit] = _Episode(int(ts[n]))
                        self._abnormal(i, code, ep, None)
                    ep.values.append(float(value[n]))
                    ep.times.append(int(ts[n]))
                elif ep is not None:
                    self._abnormal(i, code, ep, int(ts[n]))
                    del s.open[bit]

    def _abnormal(self, i: int, code: str, ep: _Episode, end: int | None) -> None:
        # Reported at the first upload at or after the event: its start (end unknown), then
        # its end with the statistics of the episode. The data time is set at that upload.
        # An episode a `hide_alarm` event covers is reported neither at its start nor at its end.
        if any(h.hides(self.world.start_ms, code, ep.start) for h in self.hidden.get(i, ())):
            return
        p = self.mine.points[i]
        stats: tuple[float | None, datetime | None, float | None, datetime | None, float | None] = (None,) * 5
        if end is not None and ep.values:
            v = np.array(ep.values)
            hi_i, lo_i = int(np.argmax(v)), int(np.argmin(v))
            stats = (float(v[hi_i]), _dt(ep.times[hi_i]), float(v[lo_i]), _dt(ep.times[lo_i]), round(float(v.mean()), 4))
        record = YcbjRecord(p.code, self.names[i], p.location or None, p.unit or None, code, None, True, _dt(ep.start),
                            None if end is None else _dt(end), *stats, None, None, None, None, _dt(ep.start))
        self._reports.append((ep.start if end is None else end, record))

    def files(self) -> Iterator[tuple[str, bytes, int]]:
        """(file name, bytes, epoch ms) of every upload: definitions first, then tick by tick.

        A redefinition is uploaded at the first tick at or after its time, before that tick's
        data, as a CDDY of all the mine's points (the changed thresholds in place) whose data
        time is the change's own: the instant from which the new thresholds apply.
        """
        o = self.options
        start = -(-self.world.start_ms // 1000) * 1000
        cddy, fzdy = definitions(self.mine, start)
        for kind, records in (("FZDY", fzdy), ("CDDY", cddy)):
            yield (*write_file(kind, self.header(start), records, tz=self.tz, newline=o.newline, encoding=o.encoding), start)
        waiting = [r for r in self.redefinitions if r.at_ms >= start]
        current: dict[str, Thresholds] = {r.point: r.thresholds for r in self.redefinitions if r.at_ms < start}
        for tick in self.ticks():
            due: dict[str, int] = {}  # point -> time of its (latest) change since the last tick
            while waiting and waiting[0].at_ms <= tick.ts_ms:
                change = waiting.pop(0)
                current[change.point] = change.thresholds
                due[change.point] = change.at_ms
            if due:
                # One file per upload instant (its name holds the instant); each changed point
                # carries its own change time, the others the latest one (they did not change).
                cddy, _ = definitions(self.mine, max(due.values()), current)
                cddy = [msgspec.structs.replace(r, data_time=_dt(due[r.point])) if r.point in due else r for r in cddy]
                yield (*write_file("CDDY", self.header(tick.ts_ms), cddy, tz=self.tz, newline=o.newline,
                                   encoding=o.encoding), tick.ts_ms)
            for kind, items in (("CDSS", tick.cdss), ("FZSS", tick.fzss), ("TJSJ", tick.tjsj), ("YCBJ", tick.ycbj)):
                if items:
                    name, data = write_file(kind, self.header(tick.ts_ms), items, tz=self.tz, newline=o.newline,
                                            encoding=o.encoding)
                    yield name, data, tick.ts_ms


def put(directory: Path, name: str, data: bytes) -> None:
    """Write a file so that a watcher never sees it half-written: a hidden name, then a rename."""
    part = directory / f".{name}.part"
    part.write_bytes(data)
    os.replace(part, directory / name)


@dataclass
class FileStats:
    """What a file-mode run wrote."""

    files: int = 0
    bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def write_history(files: MineFiles, out_dir: Path) -> FileStats:
    """Every upload of the run into `out_dir`, as fast as possible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = FileStats()
    for name, data, _ in files.files():
        put(out_dir, name, data)
        stats.files += 1
        stats.bytes += len(data)
        kind = name.rsplit("_", 2)[1]
        stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
    return stats


def run_live(files: MineFiles, out_dir: Path, *, speed: float = 1.0) -> FileStats:
    """Each upload when its simulated time comes; simulated time runs `speed` × the wall clock."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = FileStats()
    wall0, sim0 = time.monotonic(), files.world.start_ms
    for name, data, ts_ms in files.files():
        delay = (ts_ms - sim0) / 1000 / speed - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)
        put(out_dir, name, data)
        stats.files += 1
        stats.bytes += len(data)
    return stats


_ENCODER = msgspec.json.Encoder()


def snapshot_messages(files: MineFiles, prefix: str = "") -> Iterator[Message]:
    """The CDSS and FZSS snapshots as canonical MQTT messages (one per topic and tick), epoch-ms times."""
    mine = files.mine
    geotech = {p.code for p in mine.points if p.sensor_type in GEOTECH_TYPES}
    base = f"{prefix}mines/{mine.code}"
    for tick in files.ticks():
        ms = tick.ts_ms
        safety = [{"point": r.point, "ts": ms, "value": r.value, "status": r.status} for r in tick.cdss if r.point not in geotech]
        geo = [{"point": r.point, "ts": ms, "value": r.value, "status": r.status} for r in tick.cdss if r.point in geotech]
        states = [{"station": r.station, "ts": ms, "state": r.run_code, "power": r.power_code} for r in tick.fzss]
        for topic, items in ((f"{base}/safety", safety), (f"{base}/geotech", geo), (f"{base}/stations", states)):
            if items:
                yield Message(topic, _ENCODER.encode(items), len(items), ms)


def main(argv: list[str] | None = None) -> int:
    """`python -m simulators.files history|live --out-dir DIR [--mine CODE] [--hours N] ...`."""
    parser = argparse.ArgumentParser(prog="python -m simulators.files", description="Simulated upload files.")
    parser.add_argument("mode", choices=("history", "live"))
    parser.add_argument("--out-dir", type=Path, required=True, help="the drop directory to write into")
    parser.add_argument("--registry", type=Path, default=None, help="registry YAML (default: the sample)")
    parser.add_argument("--mine", default=None, help="mine code (default: the registry's first mine)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", type=Path, default=None)
    parser.add_argument("--start", default=None, help="RFC 3339 with offset (default: hours ago, or now for live)")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--speed", type=float, default=1.0, help="live: simulated seconds per real second")
    parser.add_argument("--encoding", choices=("utf-8", "gbk"), default="utf-8")
    parser.add_argument("--redefine", action="append", default=[], metavar="'AT POINT key=value,...'",
                        help="change a point's thresholds at AT (RFC 3339): a CDDY is uploaded then (repeatable)")
    args = parser.parse_args(argv)
    try:
        registry, _ = load_registry(args.registry or packaged("sample_registry.yaml"))
        code = args.mine or registry.mines[0].code
        registry = single_mine(registry, code)
        scenario = load_scenario(args.scenario, registry) if args.scenario else None
        now = datetime.now(UTC).replace(microsecond=0)
        span = timedelta(hours=args.hours)
        if args.start is not None:
            start = datetime.fromisoformat(args.start)
            if start.tzinfo is None:
                raise SimulatorError(f"--start {args.start!r} needs an offset")
        else:
            start = (now - span) if args.mode == "history" else now
        world = World(registry, args.seed, start, start + span, scenario)
        changes = [parse_redefinition(text) for text in args.redefine]
        files = MineFiles(world, code, FileOptions(encoding=args.encoding), changes)
        t0 = time.monotonic()
        stats = write_history(files, args.out_dir) if args.mode == "history" else run_live(files, args.out_dir, speed=args.speed)
    except (SimulatorError, ValueError) as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 2
    print(f"完成: {stats.files} 个文件, {stats.bytes / 1e6:.1f} MB, 用时 {time.monotonic() - t0:.1f} 秒", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
