"""The shipped routing sample starts each finding where rules.md sends it."""

from __future__ import annotations

import pytest

from alerting.lifecycle import Level
from alerting.routing import load_routing
from alerting.settings import sample_routing_path

SAMPLE = load_routing(sample_routing_path())
ORDER = [Level.MINE, Level.COUNTY, Level.CITY, Level.PROVINCE]


# rules.md §6: integrity findings open a case at the regulator (county by default), not at the mine;
# §7: restricted areas and seal breaches go to the regulator as well as the mine; §4: power off.
@pytest.mark.parametrize("rule", ["offline", "station_fault", "stuck", "calibration_abuse", "implausible_pair",
                                  "under_reporting", "power_off_failure", "seal_breach", "restricted_area",
                                  "work_continued"])
def test_regulator_findings_start_at_the_regulator(rule: str) -> None:
    assert ORDER.index(SAMPLE.start_level(rule)) >= ORDER.index(Level.COUNTY), rule
