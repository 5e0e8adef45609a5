"""Grafana's side of the dashboards: loading them and expanding SQL variables and macros as Grafana does.

The expansion follows Grafana's PostgreSQL data source: template variables are replaced first
(`$var`, `${var}`; a multi-value or include-all variable becomes a list of quoted literals, a
single-value one is inserted raw with quotes doubled), then the backend macros
(`$__timeFilter(col)` -> `col BETWEEN 'from' AND 'to'` and the others below). Anything of the
form `$name` or `$__name(...)` left over is an error: Grafana would send it to PostgreSQL as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards" / "json"
PROVISIONING_DIR = ROOT / "dashboards" / "provisioning"
POSTGRES_TYPES = frozenset({"grafana-postgresql-datasource", "postgres"})

# Grafana's variable syntaxes we allow: $name and ${name} (no [[name]], no ${name:format}).
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
# Grafana's SQL macro syntax: $__name(arguments without parentheses).
_MACRO = re.compile(r"\$__(\w+)\(([^)]*)\)")


@dataclass(frozen=True)
class Query:
    """One SQL query of a dashboard: a panel target or a variable's options query."""

    dashboard: str
    where: str
    sql: str
    format: str


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range and the interval Grafana would pick for it."""

    start: datetime
    end: datetime
    interval: timedelta


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file, by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    """The data sources the provisioning files create, by uid."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((PROVISIONING_DIR / "datasources").glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text(encoding="utf-8")).get("datasources", []):
            found[ds["uid"]] = ds
    return found


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's template variables, in order."""
    return list(dashboard.get("templating", {}).get("list", []))


def sql_queries(name: str, dashboard: Mapping[str, Any]) -> list[Query]:
    """The SQL of every PostgreSQL target and variable of a dashboard."""
    out: list[Query] = []
    for var in variables(dashboard):
        if var.get("type") == "query" and var.get("datasource", {}).get("type") in POSTGRES_TYPES:
            out.append(Query(name, f"variable {var['name']}", var["query"], "table"))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") in POSTGRES_TYPES:
                out.append(Query(name, f"panel {panel['title']!r} {target['refId']}", target["rawSql"],
                                 target.get("format", "time_series")))
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_variable(value: str | Sequence[str], *, multi: bool) -> str:
    """A variable's value as Grafana's SQL data sources insert it."""
    if isinstance(value, str):
        return _quote(value) if multi else value.replace("'", "''")
    return ",".join(_quote(v) for v in value)


def _grafana_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond // 1000:03d}" if t.microsecond else "") + "Z"


def _interval_text(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse_interval(text: str) -> int:
    m = re.fullmatch(r"'?(\d+)(ms|s|m|h|d)'?", text.strip())
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
    return max(1, int(int(m[1]) * factor))


def expand(sql: str, *, values: Mapping[str, str | Sequence[str]], multi: Mapping[str, bool],
           time_range: TimeRange) -> str:
    """The SQL Grafana would send for these variable values and this time range."""
    frm, to = (_grafana_time(t.astimezone(UTC)) for t in (time_range.start, time_range.end))
    builtins = {
        "__interval": _interval_text(time_range.interval),
        "__interval_ms": str(int(time_range.interval.total_seconds() * 1000)),
        "__range_s": str(int((time_range.end - time_range.start).total_seconds())),
    }

    def variable(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        if name in builtins:
            return builtins[name]
        if name in values:
            return format_variable(values[name], multi=multi.get(name, False))
        return m[0]  # Grafana leaves unknown names (and macros) for the next step

    text = _VARIABLE.sub(variable, sql)

    def macro(m: re.Match[str]) -> str:
        name, args = m[1], [a.strip() for a in m[2].split(",")] if m[2].strip() else []
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        if name == "timeFrom":
            return f"'{frm}'"
        if name == "timeTo":
            return f"'{to}'"
        if name in ("timeGroup", "timeGroupAlias"):
            step = _parse_interval(args[1])
            expr = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return expr + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "time":
            return f'{args[0]} AS "time"'
        raise ValueError(f"Grafana macro $__{name} is not emulated here; add it to tests/dashboards/grafana.py")

    text = _MACRO.sub(macro, text)
    leftover = re.search(r"\$\{?\w+", text)
    if leftover:
        raise ValueError(f"unexpanded Grafana variable or macro {leftover[0]!r}")
    return text
