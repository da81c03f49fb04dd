"""Patients in FHIR: CarePath's patient reference as an identifier of the deployment's system.

A deployment says which identifier its patient references are (``Settings.fhir_patient_identifier``):
the NHS number (UK Core's system) or the Swedish personnummer. A reference that is a valid identifier
of that system is shown with it; any other reference (a local MRN, a synthetic ``SYN-...``) is shown
with CarePath's own system, never passed off as an NHS number. CarePath serves no Patient resource:
resources name the patient by identifier (a logical reference), and a search may name the patient
by that identifier or by the reference itself, which is the patient's id on this server.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from engine.errors import InvalidInputError, Problem
from engine.instances.view import validate_patient_ref

__all__ = [
    "CAREPATH_PATIENT_SYSTEM",
    "SYSTEM_ALIASES",
    "SYSTEMS",
    "is_valid",
    "patient_reference",
    "patient_ref_from_identifier",
    "patient_ref_from_search",
]

# Settings.fhir_patient_identifier -> the identifier system's URI.
SYSTEMS = {
    "nhs-number": "https://fhir.nhs.uk/Id/nhs-number",  # UK Core
    "personnummer": "http://electronichealth.se/identifier/personnummer",  # Inera / 1177
}
# Other names of the same system, taken on incoming identifiers (searches, a QuestionnaireResponse's
# subject); CarePath always writes the URI above. Swedish FHIR material lists the personnummer's OID
# (Personal Identity Number, 1.2.752.129.2.1.3.1) beside the URI, so other systems may send either.
SYSTEM_ALIASES = {
    "nhs-number": frozenset[str](),
    "personnummer": frozenset({"urn:oid:1.2.752.129.2.1.3.1"}),
}
CAREPATH_PATIENT_SYSTEM = "https://carepath.dev/fhir/sid/patient-ref"


def _nhs_number(value: str) -> bool:
    """Ten digits whose last is the modulus 11 check digit of the first nine (NHS Data Dictionary)."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    remainder = sum(int(d) * (10 - i) for i, d in enumerate(value[:9])) % 11
    check = 11 - remainder
    return check != 10 and (0 if check == 11 else check) == int(value[9])


def _personnummer(value: str) -> bool:
    """Twelve digits YYYYMMDDNNNC: a real date of birth, and C the Luhn check digit of the last ten
    others (Skatteverket, SKV 704). A coordination number (day + 60) is a different system."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return False
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return False
    total = 0
    for i, digit in enumerate(value[2:11]):
        product = int(digit) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10 == int(value[11])


_VALID = {"nhs-number": _nhs_number, "personnummer": _personnummer}


def is_valid(kind: str, value: str) -> bool:
    """Whether ``value`` is a valid identifier of the system ``kind`` (a ``Settings.fhir_patient_identifier``)."""
    return _VALID[kind](value)


def patient_reference(patient_ref: str, kind: str) -> dict[str, Any]:
    """The patient as a FHIR logical reference: its identifier in the deployment's system when the
    reference is one, else in CarePath's own."""
    system = SYSTEMS[kind] if is_valid(kind, patient_ref) else CAREPATH_PATIENT_SYSTEM
    return {"type": "Patient", "identifier": {"system": system, "value": patient_ref}}


def patient_ref_from_identifier(system: str | None, value: str | None, kind: str, field: str) -> str:
    """CarePath's patient reference for an identifier of the deployment's system (by its URI or one
    of its :data:`SYSTEM_ALIASES`) or of CarePath's own.

    Raises:
        InvalidInputError: another system, no value, or a value that is not a valid identifier of the
            system (the value is never quoted).
    """
    if not isinstance(value, str) or not value:
        raise InvalidInputError("the patient identifier has no value", [Problem("needs a value", field=field)])
    if system == SYSTEMS[kind] or system in SYSTEM_ALIASES[kind]:
        if not is_valid(kind, value):
            raise InvalidInputError(
                f"the patient identifier is not a valid {kind}",
                [Problem(f"is not a valid {kind} (check digit or format)", field=field)],
            )
        return value
    if system == CAREPATH_PATIENT_SYSTEM:
        validate_patient_ref(value)
        return value
    raise InvalidInputError(
        "unknown patient identifier system",
        [Problem(f"this server names patients by {SYSTEMS[kind]} or {CAREPATH_PATIENT_SYSTEM}", field=field)],
    )


def patient_ref_from_search(name: str, value: str, kind: str) -> str:
    """A search's patient: ``patient=<reference>``, ``patient=Patient/<reference>`` or
    ``patient:identifier=<system>|<value>`` (``name`` is the parameter's name with its modifier).

    Raises:
        InvalidInputError: naming the parameter, never quoting its value.
    """
    if name.endswith(":identifier"):
        system, bar, identifier = value.partition("|")
        if not bar:
            raise InvalidInputError(
                "search by identifier as system|value", [Problem("must be <system>|<value>", field=name)]
            )
        return patient_ref_from_identifier(system, identifier, kind, name)
    reference = value.removeprefix("Patient/")
    try:
        validate_patient_ref(reference)
    except InvalidInputError as exc:
        raise InvalidInputError(
            "the patient is not a patient reference",
            [Problem("must be a patient's id (its reference) or Patient/<id>", field=name)],
        ) from exc
    return reference
