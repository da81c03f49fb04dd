"""The pathway check: an instance whose diagnosis names another cancer site than its pathway's own.

Lung cancer on the breast pathway is most likely the wrong pathway: picked from a list, or mapped wrongly
by an integrating EHR. Its tasks (lymphoedema, endocrine therapy), its warning signs and its rules'
thresholds would follow the pathway, not the cancer. Nothing is refused for it (a clinician may mean it:
a second primary, a patient followed on one pathway for now), but nobody meets it unwarned:

* the web app's start page asks before it starts one (api.web.starting);
* the API's start answers with a warning, unless the request confirmed the site (``confirm_other_site``);
* until a clinician checks it, the instance carries the warning (``GET /v1/instances/{id}``, the patient's
  page), and the check is recorded in the trail (``pathway_checked``, no payload) or given at the start
  (the ``started`` event's ``pathway_checked``). Correcting the diagnosis asks again.

Which site a diagnosis names is the diagnoses' vocabulary's (:meth:`DiagnosisVocabulary.other_site`):
a diagnosis naming no site, or two ("Lung metastases from breast cancer"), asks nothing.

Owns: :func:`pathway_check` (what a diagnosis asks), :func:`pending_check` (the warning an instance
carries), :func:`checked` (the trail's answer), :func:`confirmation_problem` (a confirmation's check) and
:func:`confirm` (recording one).

May import: ``rules`` (the diagnoses' vocabulary), ``instances`` (the view, the step service), and the
shared ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import InvalidInputError, Problem
from engine.instances.view import InstanceView, Status
from engine.rules.diagnoses import DiagnosisSite, DiagnosisVocabulary, pathway_site

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = [
    "CHECKED_EVENT",
    "CONFIRM_FIELD",
    "PathwayCheck",
    "checked",
    "confirm",
    "confirmation_problem",
    "pathway_check",
    "pending_check",
]

CHECKED_EVENT = "pathway_checked"
# The start request's field (and the web form's) that confirms the site the diagnosis names.
CONFIRM_FIELD = "confirm_other_site"
WARNING_CODE = "diagnosis-names-other-site"
_ACTIVE = (Status.RUNNING, Status.SUSPENDED, Status.ERROR)


@dataclass(frozen=True)
class PathwayCheck:
    """The site a diagnosis names and the site of the pathway it runs on, which differ."""

    site: DiagnosisSite
    pathway_site: DiagnosisSite

    def as_warning(self) -> dict[str, Any]:
        """The API's warning: codes and the sites' names, never the diagnosis as written."""
        return {
            "code": WARNING_CODE,
            "field": "/data/diagnosis",
            "site": self.site.code,
            "pathway_site": self.pathway_site.code,
            "detail": f"The diagnosis names {_lower(self.site.name_en)}, and this is the "
            f"{_lower(self.pathway_site.name_en)} pathway: check that it is the pathway meant, then correct "
            f"the diagnosis, end the instance and start the right pathway, or confirm this one "
            f"(POST /v1/instances/{{id}}/pathway-check with site '{self.site.code}').",
        }


def pathway_check(vocabulary: DiagnosisVocabulary, pathway_id: str, data: dict[str, Any] | None) -> PathwayCheck | None:
    """The check a start or an instance with ``data`` on ``pathway_id`` needs, else None."""
    named = vocabulary.other_site(pathway_id, (data or {}).get("diagnosis"))
    return None if named is None else PathwayCheck(named, vocabulary.sites[pathway_site(pathway_id)])


def checked(events: Iterable[dict[str, Any]]) -> bool:
    """Whether a clinician checked the pathway since the diagnosis was last given, from the trail (oldest
    first): a ``pathway_checked`` event, or a start that confirmed it, not followed by a correction of the
    diagnosis."""
    answer = False
    for event in events:
        kind, payload = event["type"], event.get("payload") or {}
        if kind == CHECKED_EVENT:
            answer = True
        elif kind == "started":
            answer = bool(payload.get("pathway_checked"))
        elif kind == "data_corrected" and "diagnosis" in payload.get("fields", ()):
            answer = False
    return answer


def pending_check(
    carepath: CarePath,
    view: InstanceView,
    trail: Callable[[str], list[dict[str, Any]]],
    data: dict[str, Any] | None = None,
) -> PathwayCheck | None:
    """The check an active instance still waits for, else None (an ended instance waits for none). Reads the
    instance's data when not given, and its trail (``trail(instance_id)``, oldest first: the read-only
    queries' ``events``) only when the diagnosis names another site.

    Raises: NotFoundError (the instance is gone), RuleFileError (the catalogue is invalid)."""
    if view.status not in _ACTIVE:
        return None
    if data is None:
        data = carepath.instances.instance_data(view.id)
    check = pathway_check(carepath.rules.catalogue().diagnoses, view.pathway_id, data)
    if check is None or checked(trail(view.id)):
        return None
    return check


def confirmation_problem(check: PathwayCheck | None, site: object, field: str) -> Problem | None:
    """What is wrong with confirming ``site`` when ``check`` is what the diagnosis asks (None: it is right).
    The confirmation must name the site the diagnosis names: a client that confirmed one site does not
    confirm another by accident, nor one the diagnosis no longer names."""
    if check is None:
        return Problem("the diagnosis names no other site than the pathway's: nothing to confirm", field=field)
    if site != check.site.code:
        return Problem(f"the diagnosis names '{check.site.code}': confirm that site", field=field)
    return None


def confirm(
    carepath: CarePath, instance_id: str, site: object, actor: str, expected_version: int | None
) -> InstanceView:
    """Record that ``actor`` checked the pathway of an instance whose diagnosis names ``site``.

    Raises: InvalidInputError (``/site``: nothing to confirm, or another site than the diagnosis names, read
    in the same unit of work as the event is written), NotFoundError, StaleVersionError, ConflictError."""
    vocabulary = carepath.rules.catalogue().diagnoses

    def check(pathway_id: str, data: dict[str, Any]) -> None:
        problem = confirmation_problem(pathway_check(vocabulary, pathway_id, data), site, "/site")
        if problem is not None:
            raise InvalidInputError("the pathway cannot be confirmed", [problem])

    return carepath.instances.record_pathway_check(instance_id, actor, check, expected_version)


def _lower(name: str) -> str:
    return name[:1].lower() + name[1:]
