"""The default-threshold catalogue of rules.md §1: the one table that judges a point without thresholds of its own.

A point's own thresholds (registry file or CDDY record) win; when it has none, the defaults
by gas and location type below apply, whichever path defined the point. rules/ holds no
table of its own: it judges the versions written from this one.
"""

from __future__ import annotations

from typing import Literal, get_args

from minewatch.registry.thresholds import Thresholds

LocationType = Literal[
    "T0", "T1", "T2", "intake", "face_intake", "return_middle", "shearer", "heading", "heading_return",
    "main_return", "chamber", "other",
]

# Sensor-type code (formats.md) -> the gas / quantity name the rules speak of.
SENSOR_GAS: dict[str, str] = {
    "0001": "methane", "0011": "methane", "0043": "methane", "0022": "pipe_methane",
    "0002": "wind_speed", "0003": "temperature", "0004": "co", "0005": "wind_pressure",
    "0006": "negative_pressure", "0009": "h2s", "0012": "o2", "0013": "co2", "0014": "dust",
    "0018": "humidity", "0019": "air_volume", "0020": "roof_separation",
    "0021": "dam_displacement", "0029": "water_level", "0030": "phreatic_depth",
    "0031": "rainfall", "0032": "beach_length", "0033": "freeboard", "0034": "slope_displacement",
    "1001": "local_fan", "1002": "air_door", "1004": "equipment", "1005": "switch",
    "1009": "poweroff_relay", "1010": "main_fan", "1011": "feed", "1015": "feed",
    "3001": "coal_output", "3002": "drained_gas", "4001": "station", "4002": "power_supply",
}
GASES: frozenset[str] = frozenset({*SENSOR_GAS.values(), "other"})

# rules.md §1, methane (%CH4) by location type: (alarm >=, power-off >=, restore <); None
# where the table has "—". The clear (解报) level is the alarm level: the table gives no
# separate clear value, so a reading below the alarm ends the episode.
METHANE_DEFAULTS: dict[str, tuple[float, float | None, float | None]] = {
    "T0": (1.0, 1.5, 1.0),  # longwall face, upper corner (回风隅角)
    "T1": (1.0, 1.5, 1.0),  # longwall face (采煤工作面)
    "T2": (1.0, 1.0, 1.0),  # longwall return airway (采煤工作面回风巷)
    "intake": (0.5, 0.5, 0.5),  # intake airway, high-gas / outburst mines (进风巷)
    "face_intake": (0.5, 0.5, 0.5),  # the working face's intake airway: the intake row
    "return_middle": (1.0, 1.0, 1.0),  # return airway middle (回风巷中部)
    "shearer": (1.0, 1.5, 1.0),  # shearer-mounted (采煤机)
    "heading": (1.0, 1.5, 1.0),  # heading face (掘进工作面)
    "heading_return": (1.0, 1.0, 1.0),  # heading return (掘进工作面回风流)
    "main_return": (0.75, None, None),  # main / wing return (总回风巷, 一翼回风巷)
    "chamber": (0.5, 0.5, 0.5),  # electro-mechanical chamber (机电硐室)
    # Not a row of rules.md: a methane point whose location type is not known (a CDDY
    # definition carries none). It gets the working-face row, the regulations' general 1.0 %
    # alarm, rather than no thresholds at all (which would never alarm).
    "other": (1.0, 1.5, 1.0),
}
if set(get_args(LocationType)) != set(METHANE_DEFAULTS):  # the Literal and the table are one list
    raise RuntimeError("LocationType and METHANE_DEFAULTS must name the same location types")

# rules.md §1, other gases (working-face intake air); the location type does not change them.
OTHER_GAS_DEFAULTS: dict[str, Thresholds] = {
    "co": Thresholds(alarm_hi=24.0, clear_hi=24.0),  # ppm
    "o2": Thresholds(alarm_lo=20.0, clear_lo=20.0),  # %, lower-limit gas: alarm when below
    "co2": Thresholds(alarm_hi=0.5, clear_hi=0.5),  # %; the 1.5 % stop-work level in returns is not an alarm
}

# Units a point of a catalogued gas may declare: the defaults above are in these units, so a
# point in another unit would be judged wrongly. An empty unit is allowed (not declared).
GAS_UNITS: dict[str, tuple[str, ...]] = {
    "methane": ("%CH4", "%"),
    "co": ("ppm",),
    "o2": ("%", "%O2"),
    "co2": ("%", "%CO2"),
}


def default_thresholds(gas: str, location_type: str) -> Thresholds:
    """The catalogue default for a gas at a location type (the type only matters for methane).

    A gas the catalogue has no row for (wind speed, temperature, ...) has no thresholds; an
    unknown gas name or methane location type is an error naming the allowed values.
    """
    if gas not in GASES:
        raise ValueError(f"unknown gas {gas!r}; allowed: {', '.join(sorted(GASES))}")
    if gas == "methane":
        if location_type not in METHANE_DEFAULTS:
            raise ValueError(f"unknown methane location type {location_type!r}; "
                             f"allowed: {', '.join(METHANE_DEFAULTS)}")
        alarm, poweroff, restore = METHANE_DEFAULTS[location_type]
        return Thresholds(alarm_hi=alarm, clear_hi=alarm, poweroff_hi=poweroff, restore_hi=restore)
    return OTHER_GAS_DEFAULTS.get(gas, Thresholds())


def effective_thresholds(own: Thresholds | None, *, gas: str, value_type: str, location_type: str) -> Thresholds:
    """A point's own thresholds if it declares any, else the catalogue default (analog points only).

    The one rule both the registry file and CDDY definitions version by.
    """
    if own is not None and not own.is_empty():
        return own
    if value_type != "MN":
        return Thresholds()
    return default_thresholds(gas, location_type)
