"""Monitoring integrity (rules.md §6 and the §4 power-off check): pure kernels over arrays.

One concept per module: `silence` (offline, station_fault), `stuck`, `calibration`
(calibration_abuse), `pairs` (implausible_pair), `relation` (power_off_failure),
`under_reporting`; `shifts` holds the local shift and day boundaries and `common` the input
checks and segment searches they share. Nothing here reads a clock, a database or the
environment: callers pass ``now_ns`` and arrays (int64 ns UTC times).
"""
