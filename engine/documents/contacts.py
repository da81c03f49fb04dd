"""The people and services a document tells the patient to contact, with their numbers, from the directory.

One instance's contacts: its named contact (the staff reference the named contact form recorded,
looked up in the directory: name, role, direct line, hours), that person's team and the team's other
contacts (doctor, kurator, rehabilitation coordinator), the 24-hour line, the GP practice (the start
data's ``gp_practice``), the hospitals recorded (the local hospital of shared care), the provider of
each service a care plan item names, and the number behind each warning sign's contact. A child's
(the children and young people's pathway) 24-hour number is their principal treatment centre's, or
their shared care unit's, when it is answered at all hours: never the adult acute oncology line; a
directory without one gives the emergency number, saying so. A staff reference is never shown: a
named contact missing from the directory is shown by role and team, with a note to ask the team for
the number. Each contact says whether it is example data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.directory import (
    DirectoryEntry,
    HealthSystem,
    Hours,
    ServiceDirectory,
)

__all__ = ["Contacts", "hours_label"]

Label = Callable[[str, Any], str]


def hours_label(hours: Hours | None, strings: dict[str, Any]) -> str | None:
    """ "Monday to Friday, 08:30 to 16:30" / "Måndag–fredag kl. 08.30–16.30"; None without hours."""
    if hours is None:
        return None
    if hours.always:
        return str(strings["hours"]["always"])
    sv = strings["language_name"] == "Svenska"
    opens, closes = (t.replace(":", ".") if sv else t for t in (hours.opens or "", hours.closes or ""))
    return str(strings["hours"][hours.days or "weekdays"]).format(**{"from": opens, "to": closes})


class Contacts:
    """The contacts of one instance's document, in one language."""

    def __init__(
        self,
        directory: ServiceDirectory,
        language: str,
        strings: dict[str, Any],
        label: Label,
        data: dict[str, Any],
        child: bool = False,
        health_system: str | None = None,
    ) -> None:
        """``health_system``: the deployment's (``Settings.health_system``); the section used is the
        patient's (:meth:`ServiceDirectory.for_patient`), never the language's."""
        self.directory, self.language, self.strings, self.label = directory, language, strings, label
        self.system: HealthSystem = directory.for_patient(data, health_system)
        self.data, self.child = data, child
        recorded = data.get("named_contact")
        self.recorded: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        self.staff = self.system.staff.get(str(self.recorded.get("staff_ref") or ""))
        self.team = self.system.teams.get(self.staff.team or "") if self.staff else None

    # --- one contact as the documents show it ---

    def entry(self, entry: DirectoryEntry, role: str, role_label: str, name: str | None = None) -> dict[str, Any]:
        return {
            "role": role,
            "role_label": role_label,
            "name": name or entry.name(self.language),
            "phone": entry.phone,
            "url": entry.url,
            "hours": entry.hours.as_dict() if entry.hours else None,
            "hours_label": hours_label(entry.hours, self.strings),
            "example": entry.example,
        }

    def twenty_four_hour_line(self, child: bool | None = None) -> dict[str, Any]:
        """The 24-hour line; a child's is their treatment centre's (:meth:`childrens_hospital`), else the
        emergency number saying that the directory has no children's line."""
        label = self.label("contact", "twenty_four_hour_line")
        if not (self.child if child is None else child):
            return self.entry(self.system.twenty_four_hour_line, "twenty_four_hour_line", label)
        hospital = self.childrens_hospital()
        if hospital is not None:
            return self.entry(hospital, "twenty_four_hour_line", label)
        number = self.system.emergency_number
        return {
            "role": "twenty_four_hour_line",
            "role_label": label,
            "name": str(self.strings["text"]["no_childrens_line"]).format(number=number),
            "phone": number,
            "url": None,
            "hours": {"always": True},
            "hours_label": self.strings["hours"]["always"],
            "example": False,
        }

    def childrens_hospital(self) -> DirectoryEntry | None:
        """A child's 24-hour number's owner: the principal treatment centre of their team, else the shared
        care unit recorded (``local_hospital``), else the section's one principal treatment centre,
        whichever first is answered at all hours; None when the directory has none (never the adult line)."""
        hospitals = self.system.hospitals
        team_hospital = hospitals.get(self.team.hospital or "") if self.team else None
        candidates = [
            team_hospital if team_hospital is not None and team_hospital.kind == "childrens_cancer_centre" else None,
            hospitals.get(str(self.data.get("local_hospital") or "")),
        ]
        centres = [h for h in hospitals.values() if h.kind == "childrens_cancer_centre"]
        if len(centres) == 1:  # with several, which one treats this child is not known here
            candidates.append(centres[0])
        for hospital in candidates:
            if hospital is not None and hospital.phone and hospital.hours is not None and hospital.hours.always:
                return hospital
        return None

    def named_contact(self) -> dict[str, Any] | None:
        """The named contact: from the directory when the staff reference is in it, else the role and
        team the form recorded, without a number (``in_directory`` False). Never the staff reference."""
        if not self.recorded:
            return None
        role = str(self.staff.role if self.staff and self.staff.role else self.recorded.get("role") or "")
        role_label = self.label("role", role)
        found = {"role": role, "role_label": role_label, "in_directory": self.staff is not None}
        if self.staff is None:
            return {
                **found,
                "name": None,
                "team": self.recorded.get("team"),
                "phone": None,
                "url": None,
                "hours": None,
                "hours_label": None,
                "example": False,
            }
        team = self.team.name(self.language) if self.team else self.recorded.get("team")
        return {**self.entry(self.staff, role, role_label), **found, "team": team}

    def team_contacts(self) -> list[dict[str, Any]]:
        """The named contact's team line, then its other contacts (doctor, kurator...)."""
        if self.team is None:
            return []
        found = [self.entry(self.team, "team", self.label("contact", "team"))]
        for contact in self.team.contacts:
            found.append(self.entry(contact, str(contact.role), self.label("directory_role", contact.role)))
        return found

    def gp_practice(self) -> dict[str, Any] | None:
        practice = self.system.gp_practices.get(str(self.data.get("gp_practice") or ""))
        return self.entry(practice, "gp_practice", self.label("contact", "gp_practice")) if practice else None

    def hospitals(self) -> list[dict[str, Any]]:
        """The team's hospital, and the local hospital of shared care when one is recorded."""
        codes = [self.team.hospital if self.team else None, self.data.get("local_hospital")]
        found, seen = [], set()
        for code in codes:
            hospital = self.system.hospitals.get(str(code or ""))
            if hospital is not None and hospital.code not in seen:
                seen.add(hospital.code)
                found.append(self.entry(hospital, str(hospital.kind), self.label("hospital_kind", hospital.kind)))
        return found

    def emergency(self) -> dict[str, Any]:
        """The national numbers: emergency (999 / 112) and urgent advice (NHS 111 / 1177)."""
        urgent = self.system.urgent_advice
        return {
            "emergency_number": self.system.emergency_number,
            "urgent_advice": self.entry(urgent, "urgent_advice", self.label("contact", "urgent_advice"))
            if urgent
            else None,
        }

    def all(self) -> dict[str, Any]:
        """Every contact of the document (the "My contacts" section)."""
        return {
            "named_contact": self.named_contact(),
            "team": self.team_contacts(),
            "twenty_four_hour_line": self.twenty_four_hour_line(),
            "gp_practice": self.gp_practice(),
            "hospitals": self.hospitals(),
            **self.emergency(),
        }

    # --- who provides what ---

    def provider(self, service: str | None) -> dict[str, Any] | None:
        """Who provides a service type: the named contact for ``key_worker``, else the directory's entry."""
        if not service:
            return None
        if service == "key_worker":
            contact = self.named_contact()
            return contact if contact and contact.get("phone") else None
        entry = self.system.services.get(service)
        return self.entry(entry, service, entry.name(self.language)) if entry else None

    def organisation(self, code: str) -> dict[str, Any] | None:
        entry = self.system.organisations.get(code)
        return self.entry(entry, "organisation", entry.name(self.language)) if entry else None

    def connected(self) -> list[dict[str, Any]]:
        """The organisations the patient was put in touch with (the support connection form's
        ``connected_to``, from diagnosis on), each with its number or address from the directory."""
        codes = self.data.get("connected_to")
        found = (self.organisation(str(c)) for c in (codes if isinstance(codes, list) else []))
        return [o for o in found if o]

    def for_warning_sign(self, contact_code: str, emergency: bool) -> dict[str, Any]:
        """The number behind a warning sign's contact (rules/catalogues/warning_signs.yaml): emergency
        services, the named contact, the team, the GP practice or a 24-hour line. An emergency sign
        always gets a number answered at all hours, and a contact the directory cannot answer for (one
        added to the catalogue later) gets the 24-hour line: the safe default.

        A child's 24-hour line (``treatment-centre-line``, and any other 24-hour line in a child's
        document) is :meth:`childrens_line`, named as the directory names it; without one, the
        emergency number with a ``name`` that says why, never the adult line."""
        if contact_code == "emergency-services":
            return {
                "phone": self.system.emergency_number,
                "hours_label": self.strings["hours"]["always"],
                "example": False,
            }
        candidates: list[dict[str, Any] | None] = []
        if contact_code == "key-worker":
            team = self.team_contacts()
            candidates = [self.named_contact(), team[0] if team else None]
        elif contact_code == "gp":
            candidates = [self.gp_practice(), self.emergency()["urgent_advice"]]
        for found in candidates:
            if found and found.get("phone") and (not emergency or (found.get("hours") or {}).get("always")):
                return {k: found[k] for k in ("phone", "hours_label", "example")}
        if self.child or contact_code == "treatment-centre-line":
            found = self.twenty_four_hour_line(child=True)  # the child's, named: never the adult line
            return {k: found[k] for k in ("name", "phone", "hours_label", "example")}
        line = self.twenty_four_hour_line()  # acute-oncology-line and the rest
        return {k: line[k] for k in ("phone", "hours_label", "example")}
