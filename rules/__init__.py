"""Rules: pure numpy kernels that turn readings into findings, and the rule packs that tune them.

The kernels (`thresholds`, `episodes`, `events`, `windows`, `orders`, `severity`, `calendar`)
take and return arrays: no connection, no clock, no environment. Time is int64 nanoseconds
since the epoch, UTC. The DB-facing modules (`store`, `worker`, `backfill`) are built on them.
"""

from rules.episodes import (
    DEFAULT_EXCLUDE_MASK,
    END_REASONS,
    Episodes,
    find_episodes,
    find_episodes_by_version,
)
from rules.errors import PackError, RulesError
from rules.events import Events, merge_events, scope_keys
from rules.orders import Orders, apply_count_rule, scan_orders
from rules.packs import RulePack, builtin_pack, load_pack
from rules.thresholds import (
    ThresholdSet,
    ThresholdTable,
    classify,
    classify_versions,
    resolve_versions,
)

__all__ = [
    "DEFAULT_EXCLUDE_MASK",
    "END_REASONS",
    "Episodes",
    "Events",
    "Orders",
    "PackError",
    "RulePack",
    "RulesError",
    "ThresholdSet",
    "ThresholdTable",
    "apply_count_rule",
    "builtin_pack",
    "classify",
    "classify_versions",
    "find_episodes",
    "find_episodes_by_version",
    "load_pack",
    "merge_events",
    "resolve_versions",
    "scan_orders",
    "scope_keys",
]
