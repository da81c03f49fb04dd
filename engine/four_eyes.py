"""Four eyes: who deployed or asked for a change, and whether an approver is a second person.

A new pathway version (:mod:`engine.pathways.versions`), a new rule-set version
(:mod:`engine.rules.activation`) and a migration of running instances
(:mod:`engine.instances.migration`) each need two people: one deploys or asks, a second activates
or approves. They are compared as *persons*, read from the actors the trail records
(:attr:`engine.access.Principal.actor`), so a second token of the same person, or a system acting
for them, is still the same person:

* ``author:staff:jsmith`` (signed in through OpenID Connect) -> ``staff:jsmith``
* ``author:tok_... for staff:jsmith`` (a token acting for, or held by, a member of staff) -> ``staff:jsmith``
* ``cli:staff:jsmith`` (``carepath ... --as jsmith``) -> ``staff:jsmith``
* ``author:tok_...``, ``cli``, ``system`` -> no person

An approver must be a person: a token that names nobody could be anyone's second token. Who asked
may be no person (a deployment pipeline's token, or ``system`` loading the pathways folder); any
person may then approve.

Owns no table; may import ``engine.audit`` (how an actor acting for staff is written) and the shared
modules.
"""

from __future__ import annotations

from engine.audit import split_actor
from engine.errors import FourEyesError

__all__ = ["person_of", "require_second_person"]

_STAFF = "staff:"


def person_of(actor: str) -> str | None:
    """The person (``staff:<id>``) a recorded actor names, or None when it names no person."""
    token, staff_id = split_actor(actor)
    if staff_id is not None:
        return _STAFF + staff_id
    _role, found, rest = token.partition(":")
    if found and rest.startswith(_STAFF) and len(rest) > len(_STAFF):
        return rest
    return None


def require_second_person(requested_by: str, approver: str, what: str) -> str:
    """The approver's person, when they may approve what ``requested_by`` deployed or asked for.

    Raises:
        FourEyesError: the approver names no person, or the same person as ``requested_by``.
    """
    person = person_of(approver)
    if person is None:
        raise FourEyesError(f"{what} needs a second author named as a person (signed in through the identity "
                            "provider, or an author token held by a member of staff); this token names nobody")
    if person == person_of(requested_by):
        raise FourEyesError(f"{what} needs a second author: {person} deployed or asked for it and may not "
                            "approve it too")
    return person
