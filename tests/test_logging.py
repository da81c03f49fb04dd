"""Patient data never reaches the logs through SpiffWorkflow's log records."""

from __future__ import annotations

import logging

import pytest

from engine import CarePath

NURSE = "clinician:cns-1"
SECRET = "Worried about my daughter Alice"  # free text a patient might give: in the instance's data from its start
SPIFF_LOGGERS = ("spiff.task", "spiff.workflow", "spiff.data")


def _flow(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-000123", "system:ehr", data={"note": SECRET})
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 3}, NURSE)
    carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"review_outcome": "referred"}, NURSE)


def test_spiffworkflow_loggers_default_to_warning() -> None:
    # Below INFO, SpiffWorkflow attaches task data to every state-change record and walks the
    # whole task tree to build each workflow record, whether or not anything is printed.
    from engine.spiff import patches

    patches.install()  # what every CarePath does as it starts (it sets them)

    assert [logging.getLogger(name).level for name in SPIFF_LOGGERS] == [logging.WARNING] * 3


def test_task_data_is_stripped_from_spiffworkflow_records_at_any_level(
    carepath: CarePath, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SPIFF_LOGGERS:  # an operator turning SpiffWorkflow's debug logging on
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        _flow(carepath)
    spiff_records = [record for record in caplog.records if record.name.startswith("spiff")]
    assert spiff_records, "the premise: SpiffWorkflow logged the steps"
    for record in spiff_records:
        assert not hasattr(record, "data")
        assert SECRET not in repr(vars(record))
