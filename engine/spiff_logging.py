"""SpiffWorkflow's log records without patient data (configured once, on import of the engine)."""

from __future__ import annotations

import logging

__all__: list[str] = []


class _NoPatientData(logging.Filter):
    """Drop the task data SpiffWorkflow attaches to its log records (``extra={'data': ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("data", None)
        record.__dict__.pop("tasks", None)
        return True


# SpiffWorkflow builds each log record's extras before the logger checks its level, and while its
# loggers' own level is unset (below INFO) it adds the task's data -- patient data, for any handler
# that prints extras (JSON log formatters do) -- and walks the whole task tree for workflow records.
# Its loggers default to WARNING here (INFO only marks state changes), and a filter strips task data
# from their records at any level an operator may set.
for _name in ("spiff.task", "spiff.workflow", "spiff.data"):
    _spiff_logger = logging.getLogger(_name)
    if _spiff_logger.level == logging.NOTSET:
        _spiff_logger.setLevel(logging.WARNING)
    _spiff_logger.addFilter(_NoPatientData())
