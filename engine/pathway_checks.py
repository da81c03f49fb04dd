"""The pathway check: an instance whose diagnosis names another cancer site than its pathway's own.

Lung cancer on the breast pathway is most likely the wrong pathway: picked from a list, or mapped wrongly
by an integrating EHR. Its tasks (lymphoedema, endocrine therapy), its warning signs and its rules'
thresholds would follow the pathway, not the cancer. Nothing is refused for it (a clinician may mean it:
a second primary, a patient followed on one pathway for now), but nobody meets it unwarned:

* the web app's start page asks before it starts one (api.web.starting);
* the API's start answers with a warning, unless the request confirmed the site (``confirm_other_site``);
* until a clinician checks it, the instance carries the warning (``GET /v1/instances/{id}``, the patient's
  page, a flag on the work list): its row keeps the site named (``pathway_instances.pathway_check``, set by
  the engine at the start and by a correction of the diagnosis, :meth:`CarePath._site_check`), so a list
  reads it without any workflow state. The check is recorded in the trail (``pathway_checked``, no payload)
  or given at the start (the ``started`` event's ``pathway_checked``). Correcting the diagnosis asks again.

Which site a diagnosis names is the diagnoses' vocabulary's (:meth:`DiagnosisVocabulary.other_site`):
a diagnosis naming no site, or two ("Lung metastases from breast cancer"), asks nothing.

Owns: :func:`pathway_check` (what a diagnosis asks), :func:`pending_check` (the warning an instance
carries), :func:`confirmation_problem` (a confirmation's check) and :func:`confirm` (recording one).

May import: ``rules`` (the diagnoses' vocabulary), ``instances`` (the view, the step service), and the
shared ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import InvalidInputError, Problem
from engine.instances.view import NOT_ENDED, InstanceView
from engine.rules.diagnoses import DiagnosisSite, DiagnosisVocabulary, pathway_site

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = [
    "CONFIRM_FIELD",
    "PathwayCheck",
    "confirm",
    "confirmation_problem",
    "pathway_check",
    "pending_check",
]

# The start request's field (and the web form's) that confirms the site the diagnosis names.
CONFIRM_FIELD = "confirm_other_site"
WARNING_CODE = "diagnosis-names-other-site"


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


def pending_check(carepath: CarePath, view: InstanceView) -> PathwayCheck | None:
    """The check an active instance still waits for, else None (an ended instance waits for none), from what
    its row keeps (``view.pathway_check``), named by the current vocabulary.

    Raises: RuleFileError (the catalogue is invalid)."""
    if view.pathway_check is None or view.status not in NOT_ENDED:
        return None
    sites = carepath.rules.catalogue().diagnoses.sites
    own = pathway_site(view.pathway_id)
    return PathwayCheck(_site(sites, view.pathway_check), _site(sites, own))


def confirmation_problem(check: PathwayCheck | None, site: object, field: str) -> Problem | None:
    """What is wrong with confirming ``site`` when ``check`` is what the diagnosis asks (None: it is right).
    The confirmation must name the site the diagnosis names: a client that confirmed one site does not
    confirm another by accident, nor one the diagnosis no longer names."""
    if check is None:
        return Problem("the diagnosis names no other site than the pathway's: nothing to confirm", field=field)
    if site != check.site.code:  # the message names no site: an error message holds no patient data
        return Problem(
            "not the site the diagnosis names (the instance's warning gives it): confirm that site", field=field
        )
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


def _site(sites: dict[str, DiagnosisSite], code: str) -> DiagnosisSite:
    """A site of the vocabulary; one it no longer has (changed since the instance's diagnosis was read) by its
    code alone, still shown."""
    return sites.get(code) or DiagnosisSite(code, code, code, (), (), ())


def _lower(name: str) -> str:
    return name[:1].lower() + name[1:]
