"""Prometheus metrics of the rules worker, on a registry passed in (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RulesMetrics:
    """What an operator watches: windows evaluated, findings written, evaluation time and lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.windows = Counter("minewatch_rules_windows_total", "Dirty windows evaluated and deleted",
                               registry=registry)
        self.readings = Counter("minewatch_rules_readings_total", "Readings read for evaluation", registry=registry)
        self.findings = Counter("minewatch_rules_findings_total", "Findings written, by change",
                                ["change"], registry=registry)
        self.evaluation_seconds = Histogram(
            "minewatch_rules_evaluation_seconds", "Time from claiming a mine's windows to the commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry)
        self.clock_seconds = Histogram(
            "minewatch_rules_clock_pass_seconds",
            "Time of a clock-driven pass over every mine (urgent windows served between mines included), by family",
            ["family"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry)
        self.lag_seconds = Gauge("minewatch_rules_lag_seconds",
                                 "Age of the oldest dirty window still waiting (0 when none)", registry=registry)
        self.backlog = Gauge("minewatch_rules_backlog_windows", "Dirty windows waiting", registry=registry)
        self.errors = Counter("minewatch_rules_errors_total", "Evaluations that failed and will be retried",
                              ["kind"], registry=registry)
        self.heartbeat = Gauge("minewatch_rules_heartbeat_timestamp_seconds", "Last time the worker loop ran",
                               registry=registry)
