"""Reading the engine for the FHIR API, and completing a waiting needs assessment from a patient app.

Each public method reads through the engine's own services (the care plan, instance queries, rule
evaluations, the End of Treatment Summary) and hands plain views to the mapping functions of this
package. Nothing here knows HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from engine.care_teams import EVERYWHERE, CareScope
from engine.careplan.service import CarePlanService
from engine.db.models import CarePlanItem, PathwayInstance
from engine.db.session import read_only
from engine.directory import service_directory
from engine.documents.build import (
    active_surveillance_plan,
    end_of_treatment_summaries,
    end_of_treatment_summary,
    on_active_surveillance,
)
from engine.errors import ConflictError, InvalidInputError, NotFoundError, Problem
from engine.fhir.careplans import HNA_CHECKLIST, care_plan, service_request, task
from engine.fhir.documents import (
    composition,
    document_bundle,
    parse_composition_id,
    parse_surveillance_plan_id,
    referral_ids,
)
from engine.fhir.identifiers import SYSTEMS, patient_ref_from_identifier, patient_reference
from engine.fhir.questionnaires import (
    QUESTIONNAIRE_URL,
    answers_to_task_data,
    canonical,
    questionnaire,
    questionnaire_response,
)
from engine.instances.queries import MAX_LIMIT, InstanceFilter, InstanceQueries, summary
from engine.rules import get_evaluation, list_evaluations

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = ["FhirService"]


class FhirService:
    """The FHIR R4 view of one engine (the facade an API holds)."""

    def __init__(self, carepath: CarePath, software: str = "CarePath") -> None:
        self.carepath = carepath
        self.software = software
        self.kind = carepath.settings.fhir_patient_identifier
        self.queries = InstanceQueries(carepath.sessions, carepath.instances)

    @property
    def patient_system(self) -> str:
        """The identifier system of this deployment's patients."""
        return SYSTEMS[self.kind]

    def _patient(self, patient_ref: str) -> dict[str, Any]:
        return patient_reference(patient_ref, self.kind)

    def _instances(self, patient_ref: str, scope: CareScope) -> list[dict[str, Any]]:
        """Every instance of the patient within ``scope`` (as listings show them), oldest first."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.queries.find(InstanceFilter(patient_ref=patient_ref, scope=scope), cursor, MAX_LIMIT)
            found.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return found

    @staticmethod
    def _instance(session: Session, instance_id: str) -> dict[str, Any]:
        row = session.get(PathwayInstance, instance_id)
        if row is None:
            raise NotFoundError("no such care plan")
        return summary(row)

    # --- care plans and referrals --------------------------------------------------------------

    def _plan(self, session: Session, instance: dict[str, Any]) -> dict[str, Any]:
        plan = CarePlanService.read(session, instance["id"])
        assessments = [e.id for e in list_evaluations(session, instance_id=instance["id"])]
        return care_plan(plan, instance, self._patient(plan.patient_ref), assessments, self.carepath.rules.catalogue())

    def care_plans(self, patient_ref: str, scope: CareScope = EVERYWHERE) -> list[dict[str, Any]]:
        """The patient's care plans, one per pathway instance."""
        instances = self._instances(patient_ref, scope)
        with read_only(self.carepath.sessions) as session:
            return [self._plan(session, instance) for instance in instances]

    def care_plan(self, instance_id: str) -> dict[str, Any]:
        """Raises: NotFoundError."""
        with read_only(self.carepath.sessions) as session:
            return self._plan(session, self._instance(session, instance_id))

    def service_requests(self, patient_ref: str, scope: CareScope = EVERYWHERE) -> list[dict[str, Any]]:
        """The referrals of the patient's care plans."""
        catalogue = self.carepath.rules.catalogue()
        patient = self._patient(patient_ref)
        instances = self._instances(patient_ref, scope)
        with read_only(self.carepath.sessions) as session:
            return [
                service_request(item, instance["id"], patient, catalogue)
                for instance in instances
                for item in CarePlanService.read(session, instance["id"]).items
                if item["kind"] == "referral"
            ]

    def service_request(self, item_id: str) -> dict[str, Any]:
        """Raises: NotFoundError (also for an item that is not a referral)."""
        with read_only(self.carepath.sessions) as session:
            item = session.get(CarePlanItem, item_id)
            if item is None or item.kind != "referral":
                raise NotFoundError("no such referral")
            instance = self._instance(session, item.instance_id)
            return service_request(
                item.as_dict(), instance["id"], self._patient(instance["patient_ref"]), self.carepath.rules.catalogue()
            )

    # --- needs assessments -----------------------------------------------------------------------

    def questionnaire(self) -> dict[str, Any]:
        """The concerns checklist of the current catalogue, with the directory's 24-hour line.

        Raises: RuleFileError (a broken catalogue or service directory)."""
        settings = self.carepath.settings
        return questionnaire(self.carepath.rules.catalogue(), service_directory(settings), settings.health_system)

    def questionnaire_responses(self, patient_ref: str, scope: CareScope = EVERYWHERE) -> list[dict[str, Any]]:
        """The patient's needs assessments, oldest first."""
        catalogue = self.carepath.rules.catalogue()
        patient = self._patient(patient_ref)
        instances = self._instances(patient_ref, scope)
        with read_only(self.carepath.sessions) as session:
            return [
                questionnaire_response(e, instance["id"], patient, catalogue)
                for instance in instances
                for e in list_evaluations(session, instance_id=instance["id"])
            ]

    def questionnaire_response(self, evaluation_id: str) -> dict[str, Any]:
        """Raises: NotFoundError."""
        with read_only(self.carepath.sessions) as session:
            evaluation = get_evaluation(session, evaluation_id)
            if evaluation.instance_id is None:  # evaluated outside a pathway (a rule test, the CLI)
                raise NotFoundError("no such questionnaire response")
            instance = self._instance(session, evaluation.instance_id)
        return questionnaire_response(
            evaluation, instance["id"], self._patient(instance["patient_ref"]), self.carepath.rules.catalogue()
        )

    def complete_assessment(
        self, response: dict[str, Any], actor: str, scope: CareScope = EVERYWHERE
    ) -> dict[str, Any] | None:
        """Complete the patient's waiting needs assessment (the ready checklist task, within the caller's
        ``scope``: another team's is not waiting for them) with a patient app's QuestionnaireResponse;
        the stored assessment as a QuestionnaireResponse, or None when the pathway stored none (it is
        then in error, or its diagram evaluates no rules there).

        Raises:
            InvalidInputError: not a completed response to the checklist, no patient, answers that do
                not fit the checklist.
            ConflictError: no needs assessment is waiting for the patient, or several are and the
                response does not name its care plan (``basedOn``).
            TaskDataError: the answers fail the checklist task's form.
            StaleVersionError: the instance changed meanwhile (try again).
        """
        patient_ref, instance_id = self._submitted(response)
        data = answers_to_task_data(response, self.carepath.rules.catalogue())
        page = self.queries.ready_tasks(
            InstanceFilter(patient_ref=patient_ref, scope=scope), HNA_CHECKLIST[1], None, MAX_LIMIT
        )
        waiting = [
            t
            for t in page.items
            if t["process"] == HNA_CHECKLIST[0] and (instance_id is None or t["instance_id"] == instance_id)
        ]
        if not waiting:
            raise ConflictError(
                "no needs assessment is waiting for this patient" + (" in that care plan" if instance_id else "")
            )
        if len(waiting) > 1:
            plans = ", ".join(f"CarePlan/{t['instance_id']}" for t in waiting)
            raise ConflictError(
                f"several needs assessments are waiting for this patient ({plans}): name one with basedOn"
            )
        ready = waiting[0]
        with read_only(self.carepath.sessions) as session:
            before = {e.id for e in list_evaluations(session, instance_id=ready["instance_id"])}
        self.carepath.instances.complete_task(
            ready["instance_id"], ready["id"], data, actor, expected_version=ready["instance_version"]
        )
        with read_only(self.carepath.sessions) as session:
            new = [e for e in list_evaluations(session, instance_id=ready["instance_id"]) if e.id not in before]
        if not new:
            return None
        return questionnaire_response(
            new[-1], ready["instance_id"], self._patient(patient_ref), self.carepath.rules.catalogue()
        )

    def _submitted(self, response: dict[str, Any]) -> tuple[str, str | None]:
        """The patient and (if named) the care plan of a submitted response. Raises: InvalidInputError."""
        problems = []
        if response.get("resourceType") != "QuestionnaireResponse":
            problems.append(Problem("must be QuestionnaireResponse", field="QuestionnaireResponse.resourceType"))
        if response.get("status") != "completed":
            problems.append(
                Problem("only a completed response completes the assessment", field="QuestionnaireResponse.status")
            )
        answered = response.get("questionnaire")
        if not isinstance(answered, str) or answered.split("|", 1)[0] != QUESTIONNAIRE_URL:
            problems.append(
                Problem(
                    f"must be the checklist, {canonical(self.carepath.rules.catalogue().version)}",
                    field="QuestionnaireResponse.questionnaire",
                )
            )
        if problems:
            raise InvalidInputError("not a completed response to the needs assessment checklist", problems)
        subject = response.get("subject")
        identifier = subject.get("identifier") if isinstance(subject, dict) else None
        if not isinstance(identifier, dict):
            raise InvalidInputError(
                "the response does not name its patient",
                [
                    Problem(
                        f"needs identifier {{system, value}} ({self.patient_system})",
                        field="QuestionnaireResponse.subject.identifier",
                    )
                ],
            )
        patient_ref = patient_ref_from_identifier(
            identifier.get("system"), identifier.get("value"), self.kind, "QuestionnaireResponse.subject.identifier"
        )
        return patient_ref, self._care_plan_named(response.get("basedOn"))

    @staticmethod
    def _care_plan_named(based_on: Any) -> str | None:
        if based_on is None:
            return None
        references = [b.get("reference") for b in based_on if isinstance(b, dict)] if isinstance(based_on, list) else []
        plans = [r.removeprefix("CarePlan/") for r in references if isinstance(r, str) and r.startswith("CarePlan/")]
        if len(plans) != 1 or len(references) != 1:
            raise InvalidInputError(
                "basedOn names the care plan",
                [Problem("must be one reference, CarePlan/<id>", field="QuestionnaireResponse.basedOn")],
            )
        return plans[0]

    # --- ready tasks ---------------------------------------------------------------------------------

    def tasks(self, patient_ref: str, scope: CareScope = EVERYWHERE) -> list[dict[str, Any]]:
        """The patient's ready tasks, across their running instances within ``scope``."""
        patient = self._patient(patient_ref)
        checklist = canonical(self.carepath.rules.catalogue().version)
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.queries.ready_tasks(
                InstanceFilter(patient_ref=patient_ref, scope=scope), None, cursor, MAX_LIMIT
            )
            found.extend(task(ready, patient, checklist) for ready in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return found

    # --- the End of Treatment Summary, and the active surveillance plan -------------------------------

    def compositions(
        self, patient_ref: str, language: str | None = None, scope: CareScope = EVERYWHERE
    ) -> list[dict[str, Any]]:
        """The patient's End of Treatment Summaries that have been written, and the active surveillance plan of
        each instance on active surveillance."""
        found = []
        for instance in self._instances(patient_ref, scope):
            phases = end_of_treatment_summaries(self.carepath, instance["id"], language)["phases"]
            for phase in phases:  # one per phase of care whose summary is written
                if phase["status"] != "written":
                    continue
                summary_json = end_of_treatment_summary(self.carepath, instance["id"], language, phase["number"])
                found.append(composition(summary_json, self._patient(patient_ref), self.software))
            if on_active_surveillance(instance["pathway_id"], self.carepath.instances.instance_data(instance["id"])):
                plan = active_surveillance_plan(self.carepath, instance["id"], language)
                found.append(composition(plan, self._patient(patient_ref), self.software))
        return found

    def _summary(self, composition_id: str, language: str | None) -> dict[str, Any]:
        """The document a Composition id names: an End of Treatment Summary, or an active surveillance plan.

        Raises: NotFoundError (none, or not written, or no active surveillance).
        """
        on_surveillance = parse_surveillance_plan_id(composition_id)
        if on_surveillance is not None:
            try:
                return active_surveillance_plan(self.carepath, on_surveillance, language)
            except ConflictError as exc:
                raise NotFoundError("no such composition: the patient is not on active surveillance") from exc
            except NotFoundError as exc:
                raise NotFoundError("no such composition") from exc
        named = parse_composition_id(composition_id)
        if named is None:
            raise NotFoundError("no such composition")
        try:
            return end_of_treatment_summary(self.carepath, named[0], language, named[1])
        except ConflictError as exc:
            raise NotFoundError("no such composition: the end of treatment summary is not written yet") from exc
        except NotFoundError as exc:
            raise NotFoundError("no such composition") from exc

    def composition(self, composition_id: str, language: str | None = None) -> dict[str, Any]:
        """Raises: NotFoundError (no such instance, or its summary is not written yet)."""
        summary_json = self._summary(composition_id, language)
        return composition(summary_json, self._patient(summary_json["patient_ref"]), self.software)

    def document(self, composition_id: str, base_url: str, language: str | None = None) -> dict[str, Any]:
        """The summary as a document Bundle with the referrals it names.

        Raises: NotFoundError (no such instance, or its summary is not written yet).
        """
        summary_json = self._summary(composition_id, language)
        patient = self._patient(summary_json["patient_ref"])
        named = set(referral_ids(summary_json))
        plan = self.carepath.care_plans.get(summary_json["instance_id"])
        catalogue = self.carepath.rules.catalogue()
        referrals = [
            service_request(item, plan.instance_id, patient, catalogue)
            for item in plan.items
            if item["kind"] == "referral" and item["id"] in named
        ]
        return document_bundle(summary_json, referrals, patient, self.software, base_url)
