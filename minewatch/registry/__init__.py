"""The registry: mines, stations, faces, points, areas and cards, declared in YAML and validated at load.

One owner for everything a point is judged by: the models (`models`), the default-threshold
catalogue of rules.md §1 (`catalogue`), the threshold order (`thresholds`), loading the file
(`load`), and, in `minewatch.registry.db`, the one writer of threshold versions and the one
lookup ingest validates against. See docs/registry.md for the file format.
"""

from minewatch.registry.catalogue import (
    GAS_UNITS,
    METHANE_DEFAULTS,
    OTHER_GAS_DEFAULTS,
    SENSOR_GAS,
    LocationType,
    default_thresholds,
    effective_thresholds,
)
from minewatch.registry.load import load_registry
from minewatch.registry.models import (
    Area,
    Card,
    Code,
    Face,
    GeoLevels,
    Mine,
    MineKind,
    Pair,
    Point,
    PointCode,
    Region,
    Registry,
    Relation,
    RelationKind,
    Role,
    Station,
    ValueType,
)
from minewatch.registry.thresholds import THRESHOLD_FIELDS, Thresholds, order_problems, thresholds_equal

__all__ = [
    "GAS_UNITS",
    "METHANE_DEFAULTS",
    "OTHER_GAS_DEFAULTS",
    "SENSOR_GAS",
    "THRESHOLD_FIELDS",
    "Area",
    "Card",
    "Code",
    "Face",
    "GeoLevels",
    "LocationType",
    "Mine",
    "MineKind",
    "Pair",
    "Point",
    "PointCode",
    "Region",
    "Registry",
    "Relation",
    "RelationKind",
    "Role",
    "Station",
    "Thresholds",
    "ValueType",
    "default_thresholds",
    "effective_thresholds",
    "load_registry",
    "order_problems",
    "thresholds_equal",
]
