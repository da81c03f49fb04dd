"""Which health system the patient is cared for in, read where a pathway's steps differ by it.

Some steps are one country's: the cancer care reviews are English primary care's (the GP contract's
Quality and Outcomes Framework) and the Cancer Quality of Life Survey is NHS England's, while a
patient in Sweden is asked about the 1177 evaluation of Min vårdplan cancer. The gateways that choose
read ``health_system`` from the result of one operator, ``carepath.health_system`` (no parameters),
never the bare start data: an instance started before its pathway declared the field, or moved to a
new version by ``carepath migrate``, has no ``health_system`` in its data, and a gateway reading a
missing name would stop the instance with an incident.

The operator returns the top workflow's ``health_system`` when it names a known section
(:data:`engine.settings.HEALTH_SYSTEMS`): recorded at the start (``engine.instances.forms.
with_health_system``) or corrected since. Otherwise the section the documents would take for the
instance (``ServiceDirectory.for_patient``: the deployment's ``CAREPATH_HEALTH_SYSTEM``, else the
directory's only section, else the one that knows the patient's named contact, GP practice or
hospital, else its first), resolved by the facade (``engine.app``), which the start uses too. It is
not recorded: an instance that has none goes on being resolved as its documents are, each time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from engine.instances.step import ServiceOperator, StepContext
from engine.settings import HEALTH_SYSTEMS

__all__ = ["HEALTH_SYSTEM_OPERATOR", "health_system_operators"]

HEALTH_SYSTEM_OPERATOR = "carepath.health_system"
_KEY = "health_system"  # in the top workflow's data, as the start data names it


def health_system_operators(resolve: Callable[[dict[str, Any]], str] | None = None) -> dict[str, ServiceOperator]:
    """``carepath.health_system``. ``resolve``: the section the documents would take for an instance's
    data (the facade's: ``ServiceDirectory.for_patient`` with the deployment's setting); without it,
    ``england``."""
    return {HEALTH_SYSTEM_OPERATOR: functools.partial(_health_system, resolve)}


def _health_system(
    resolve: Callable[[dict[str, Any]], str] | None, context: StepContext, task: Any, params: dict[str, Any]
) -> str:
    data = task.workflow.top_workflow.data
    recorded = data.get(_KEY)
    if recorded in HEALTH_SYSTEMS:
        return str(recorded)
    found = resolve(data) if resolve is not None else None
    return str(found) if found in HEALTH_SYSTEMS else HEALTH_SYSTEMS[0]
