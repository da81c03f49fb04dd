"""CarePath in HL7 FHIR R4 (4.0.1): the care plan, referrals, needs assessments, ready tasks and the End
of Treatment Summary as FHIR resources, and a patient app's needs assessment back in.

Owns: the mapping of engine views onto FHIR resources as plain dicts (``careplans``, ``questionnaires``,
``documents``, ``server``) with the status mappings they document, patient identifiers (``identifiers``:
the NHS number or the personnummer, by deployment), and the service an API calls (``service``:
:class:`FhirService`). No Flask, no HTTP: ``api/fhir.py`` serves it; docs/fhir.md describes it. The
resources are validated against the FHIR R4 models of ``fhir.resources`` in the tests, not at run time.

May import: ``engine.careplan``, ``engine.instances``, ``engine.documents``, ``engine.rules``, ``engine.db``,
``engine.app`` (the facade's type only) and the shared modules.
"""

from engine.fhir.careplans import HNA_CHECKLIST, care_plan, service_request, task
from engine.fhir.documents import composition, document_bundle
from engine.fhir.identifiers import CAREPATH_PATIENT_SYSTEM, SYSTEMS, patient_reference
from engine.fhir.questionnaires import QUESTIONNAIRE_ID, QUESTIONNAIRE_URL, answers_to_task_data, questionnaire
from engine.fhir.server import RESOURCES, capability_statement, operation_outcome, searchset
from engine.fhir.service import FhirService

__all__ = [
    "CAREPATH_PATIENT_SYSTEM",
    "HNA_CHECKLIST",
    "QUESTIONNAIRE_ID",
    "QUESTIONNAIRE_URL",
    "RESOURCES",
    "SYSTEMS",
    "FhirService",
    "answers_to_task_data",
    "capability_statement",
    "care_plan",
    "composition",
    "document_bundle",
    "operation_outcome",
    "patient_reference",
    "questionnaire",
    "searchset",
    "service_request",
    "task",
]
