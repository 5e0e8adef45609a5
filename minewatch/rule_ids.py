"""Rule ids: the values a finding's and a case's `rule` take (contract v1), defined once.

`rules/` emits them and `alerting/` routes, names and groups them; the two packages do not
import each other, so the ids live here in the shared core. An id is either *emitted* (the
rule engine writes findings with it today) or *reserved* (the contract names it for a rule
family not yet wired: geotech). Routing and templates may speak of
both; `tests/alerting/test_rule_ids.py` checks that they name nothing else and that every
emitted id is routed and named in every language.
"""

from __future__ import annotations

# §1–2 of rules.md: one exceedance rule per gas the engine builds events for; the contract
# spells them `<gas>_exceedance`. Methane's is the one with the four measures.
EXCEEDANCE_GASES: tuple[str, ...] = ("methane", "co", "o2", "co2")


def exceedance_rule(gas: str) -> str:
    """The finding rule of an exceedance event of a gas: methane_exceedance, co_exceedance, ..."""
    return f"{gas}_exceedance"


METHANE_EXCEEDANCE = exceedance_rule("methane")
SHUTDOWN_ORDER = "shutdown_order"  # §3: a count rule of the pack completed, the mine stops
SPECIAL_INSPECTION = "special_inspection"  # §3: repeated accidents
HIGH_VALUE_EXCEEDANCE = "high_value_exceedance"  # §5: flags for root-cause measures
FREQUENT_EXCEEDANCE = "frequent_exceedance"

# §4's power-off check and §6 monitoring integrity (rules.integrity_worker).
POWER_OFF_FAILURE = "power_off_failure"
OFFLINE = "offline"
STATION_FAULT = "station_fault"
STUCK = "stuck"
CALIBRATION_ABUSE = "calibration_abuse"
IMPLAUSIBLE_PAIR = "implausible_pair"
UNDER_REPORTING = "under_reporting"
INTEGRITY: frozenset[str] = frozenset({
    POWER_OFF_FAILURE, OFFLINE, STATION_FAULT, STUCK, CALIBRATION_ABUSE, IMPLAUSIBLE_PAIR, UNDER_REPORTING,
})

# §7 personnel location and §4's evacuation check (rules.personnel_worker).
OVER_CAPACITY = "over_capacity"
NO_LEADER = "no_leader"
OVERTIME = "overtime"
RESTRICTED_AREA = "restricted_area"
SEAL_BREACH = "seal_breach"
WORK_CONTINUED = "work_continued"
PERSONNEL: frozenset[str] = frozenset({
    OVER_CAPACITY, NO_LEADER, OVERTIME, RESTRICTED_AREA, SEAL_BREACH, WORK_CONTINUED,
})
# Findings that open at the regulator as well as the mine, never at the mine alone: monitoring
# integrity (§6, §4 power-off) and the personnel hazards rules.md §7 / §4 send there (a major
# over_capacity too: alerting judges that one by the finding's level).
AT_REGULATOR: frozenset[str] = INTEGRITY | {RESTRICTED_AREA, SEAL_BREACH, WORK_CONTINUED}
# Findings rules.md §7 / §4 says are raised immediately: their notifications never wait out a
# group window, whatever the finding's level (restricted_area is a `warning`; the others are
# `major`, as is an over_capacity that is immediate, which alerting judges by its level).
IMMEDIATE: frozenset[str] = frozenset({RESTRICTED_AREA, SEAL_BREACH, WORK_CONTINUED})

# What the rule engine writes into `findings.rule` today.
EMITTED: frozenset[str] = frozenset({
    *(exceedance_rule(gas) for gas in EXCEEDANCE_GASES),
    SHUTDOWN_ORDER, SPECIAL_INSPECTION, HIGH_VALUE_EXCEEDANCE, FREQUENT_EXCEEDANCE,
    *INTEGRITY,
    *PERSONNEL,
})

# §8 geotech: named by the contract, not yet emitted.
# Routing for them may be configured ahead of the rules that will raise them.
RESERVED: frozenset[str] = frozenset({
    "tailings_warning", "slope_warning",
})

KNOWN: frozenset[str] = EMITTED | RESERVED


def is_known(rule: str) -> bool:
    """Whether `rule` is a rule id of the contract (emitted or reserved)."""
    return rule in KNOWN
