"""Every task a person does shows whose work it is (issue 14 point 6): a task of a shared sub-pathway,
drawn without lanes, takes the lane of the call activity that runs it."""

from __future__ import annotations

import pytest

from engine import CarePath, ManualClock

from .journeys import HIGH_CONCERNS, SITES, _mdt, _start, _support

GP_LANE = "Primary care (GP practice)"


@pytest.mark.parametrize("site", sorted(SITES))
def test_every_ready_task_has_a_lane_and_shared_ones_take_their_callers(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = _start(bundled, journey_clock, SITES[site], "SYN-0951")
    _support(j, "no")
    j.hna(HIGH_CONCERNS)
    _mdt(j, SITES[site], prehab=False, special=False)
    tasks = bundled.instances.get(j.view.id).ready_tasks
    assert tasks and all(t["lane"] for t in tasks), [(t["element"], t["lane"]) for t in tasks]
    review = next(t for t in tasks if t["element"] == "first_review")
    assert review["process"] == "cancer_care_reviews" and review["lane"] == GP_LANE
    # The work list reads the summary stored at the last save: the same lanes.
    listed = {t["id"]: t["lane"] for t in bundled.instances.ready_tasks(j.view.id)}
    assert listed == {t["id"]: t["lane"] for t in tasks}
