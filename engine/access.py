"""Who may do what: API tokens, roles and the permission table.

A token is a random 32-byte URL-safe secret shown once when it is created; only its SHA-256 is
stored. A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so
there is nothing to brute-force, and every request is authenticated. A token may be given a
lifetime (``carepath token create --expires-in P90D``): past it, it is refused like a revoked one.

API tokens are for systems. People sign in through the organisation's OpenID Connect provider
(:mod:`engine.identity`), which makes a :class:`Principal` of the same kind with the person's staff id.

Roles (issue 6):

* ``system``    -- integrating systems (EHR, patient app): start pathways, advance tasks, send messages,
  read care plans and summaries (patient apps show them)
* ``clinician`` -- complete tasks, read instances and care plans, move care plan items on, read an
  instance's event trail and its rule evaluations, correct an instance's data (with a reason)
* ``author``    -- validate and deploy pathway (and rule) versions, activate a version another author
  deployed, ask for and approve (a second author) migrations of instances to a new version
* ``auditor``   -- read-only: instances, documents, rule evaluations, event trails and their verification,
  and who looked at which patient's records (the access log)
* ``admin``     -- manage webhook subscriptions (whose secrets it sees once), their dead letters and
  replays, and link patients' identities; nothing clinical (issue 17)
* ``manager``   -- a service's measures and demand, aggregated with small counts suppressed, and the
  COSD-shaped export its data team submits (issue 21, docs/measures.md); no instance, task or trail
* ``patient``   -- a patient (issue 18.2): reads their own plan and documents, submits their own needs
  assessment, feedback and warning-sign reports, and nothing else. A patient's principal carries their
  ``patient_ref``; every patient action is scoped to it (:mod:`engine.patients`). A patient's API token
  names its patient (``carepath token create --role patient --patient-ref X``: for tests, demonstrations
  and a patient app's own sign-in); a person signs in through OpenID Connect (:mod:`engine.identity`).

Whose patients (:mod:`engine.care_teams`, docs/access.md): a principal carries an organisation and
care teams. Clinicians and systems reach their teams' instances (all of their organisation's when
no team is named); auditors reach their whole organisation; a token made without an organisation
reaches every organisation (development, tests, tokens made before care teams). A person signed in
through the identity provider always has a scope: without an organisation claim, nothing. A
clinician may break the glass (:data:`BREAK_GLASS_ROLES`) to read another team's patient of their
organisation, with a reason.

:data:`PERMISSIONS` is the one table the HTTP API (``/v1`` and ``/fhir/R4``) enforces and the role x
endpoint tests read. What describes the API (``/v1/``, ``/v1/openapi.json``, ``/fhir/R4/metadata``)
needs no token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.audit import on_behalf_of
from engine.care_teams import EVERYWHERE, CareScope, check_name, check_teams
from engine.clock import Clock
from engine.db.models import ApiToken, EndedWebSession
from engine.errors import InvalidInputError, InvalidTokenError, NotFoundError, PermissionDeniedError, Problem

__all__ = [
    "ACTING_FOR_ROLES",
    "PATIENT_ROLE",
    "BREAK_GLASS_ROLES",
    "PERMISSIONS",
    "ROLES",
    "STAFF_ID_PATTERN",
    "STAFF_ROLES",
    "ApiToken",
    "Principal",
    "TokenInfo",
    "acting_for",
    "authenticate",
    "authorize",
    "create_token",
    "end_web_session",
    "list_tokens",
    "parse_lifetime",
    "person_id",
    "principal_of_token",
    "purge_ended_web_sessions",
    "revoke_token",
    "token_is_live",
    "web_session_ended",
]

ROLES = ("system", "clinician", "author", "auditor", "admin", "manager", "patient")
PATIENT_ROLE = "patient"
# Everyone but patients: a patient sees their own records through the patient.* actions only.
STAFF_ROLES = frozenset(ROLES) - {PATIENT_ROLE}

# action -> roles allowed. Every API operation names exactly one action.
PERMISSIONS: dict[str, frozenset[str]] = {
    "pathways.read": STAFF_ROLES,
    "pathways.validate": frozenset({"author"}),
    "pathways.deploy": frozenset({"author"}),
    "pathways.activate": frozenset({"author"}),  # a second author: never who deployed it (engine.four_eyes)
    "rule_sets.deploy": frozenset({"author"}),  # record the rules folder's texts: a changed one is pending
    "rule_sets.activate": frozenset({"author"}),  # a second author, as for pathways
    # Start a pathway for a patient: the integrating system (the EHR records the diagnosis), or a clinician who
    # enrols a newly diagnosed patient on the web app's start page, in one of their own care teams.
    "instances.start": frozenset({"system", "clinician"}),
    "instances.read": frozenset({"system", "clinician", "auditor"}),
    "instances.manage": frozenset({"system", "clinician"}),  # suspend, resume, cancel, retry
    "tasks.read": frozenset({"system", "clinician"}),
    "tasks.complete": frozenset({"system", "clinician"}),
    # Deliver a message to a waiting instance: the integrating system (the EHR, the SACT system), or a
    # clinician of the patient's care team who learns of it first (a recurrence at clinic, a death told by the
    # family, a warning sign phoned in) and records it on the patient page. The engine keeps it to the
    # sender's care teams (a death: engine.instances.deaths).
    "messages.send": frozenset({"system", "clinician"}),
    "events.read": frozenset({"auditor", "clinician"}),
    "audit.verify": frozenset({"auditor"}),
    "documents.read": frozenset({"system", "clinician", "auditor"}),  # care plan, end of treatment summary
    "care_plans.update": frozenset({"clinician"}),
    "instances.correct": frozenset({"clinician"}),  # correct an instance's data, with a reason
    # Move an instance to another care team of its organisation, with a reason code: a clinician of the
    # team looking after the patient (the hand-over is theirs), or the integrating system that records
    # transfers (the EHR / PAS). Never an admin (nothing clinical) or an author.
    "instances.transfer": frozenset({"clinician", "system"}),
    "sandbox.clock": frozenset({"author"}),  # move a sandbox deployment's clock forward (engine.sandbox)
    "evaluations.read": frozenset({"auditor", "clinician"}),
    "pathways.migrate": frozenset({"author"}),  # dry runs; asking for, and approving (a second author), a move
    "migrations.read": frozenset({"author", "auditor"}),  # migration requests: who asked, who approved, reports
    "access_log.read": frozenset({"auditor"}),  # who looked at a patient's records (engine.access_log)
    "webhooks.manage": frozenset({"admin"}),  # subscriptions, dead letters, replays
    "patients.link": frozenset({"admin", "system"}),  # link an OpenID Connect identity to a patient reference
    # A patient's own records, scoped to their patient reference (engine.patients): another patient's are
    # not found (404), never forbidden, so a patient learns nothing of whether they exist.
    "patient.read": frozenset({PATIENT_ROLE}),  # their plan, what happens next, their documents (en/sv)
    "patient.submit": frozenset({PATIENT_ROLE}),  # their needs checklist and feedback forms, nothing else
    "patient.report": frozenset({PATIENT_ROLE}),  # report a warning sign
    "patient.ask": frozenset({PATIENT_ROLE}),  # ask for a holistic needs assessment now
    "reports.read": frozenset({"auditor", "manager"}),  # aggregated measures, small counts suppressed
    "reports.export": frozenset({"auditor", "manager"}),  # the COSD-shaped export: one row per patient
}


# X-On-Behalf-Of: an integrating system (an EHR, a patient app's back end) names the member of staff
# it acts for. A person's own token (clinician, author, auditor) acts for its holder and never for
# another: naming someone else would put words in their mouth in the trail.
ACTING_FOR_ROLES = frozenset({"system"})
# A staff identifier (a directory reference, an employee number, an SDS user id): no spaces, no names.
STAFF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
_STAFF_ID = re.compile(STAFF_ID_PATTERN)
# The one rule for naming patients (engine.instances.view.PATIENT_REF_PATTERN; access may not import instances,
# and tests/test_patients.py holds the two the same).
PATIENT_REF_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
# Who may read outside their teams in an emergency, with a reason (engine.care_teams.BreakGlass).
BREAK_GLASS_ROLES = frozenset({"clinician"})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a system holding an API token (perhaps acting for a member of staff,
    ``on_behalf_of``), or a person signed in through the OpenID Connect provider (``staff_id`` set;
    ``token_id`` is then a stable id derived from the provider's subject, which scopes Idempotency-Keys).
    A patient's principal (role ``patient``) carries ``patient_ref``: the only patient whose records it reads."""

    role: str
    token_id: str
    label: str
    staff_id: str | None = None
    on_behalf_of: str | None = None
    patient_ref: str | None = None
    # Whose patients (engine.care_teams): organisation None reaches every organisation (a token made
    # without one); teams None reaches every team of the organisation.
    organisation: str | None = None
    teams: frozenset[str] | None = None

    @property
    def scope(self) -> CareScope:
        """The instances this principal reaches: an auditor's whole organisation, anyone else's teams."""
        if self.organisation is None:
            return EVERYWHERE
        return CareScope(self.organisation, None if self.role == "auditor" else self.teams)

    @property
    def actor(self) -> str:
        """How the caller is named in the event trail (never a secret): ``clinician:staff:jsmith`` for
        a person, ``system:tok_...`` for a token, and the member of staff a token acts for
        (:func:`engine.audit.on_behalf_of`). A patient is named by their token's or identity's id
        (``patient:tok_...``, ``patient:oidc_...``), never by their patient reference."""
        if self.staff_id is not None:
            return f"{self.role}:staff:{self.staff_id}"
        return on_behalf_of(f"{self.role}:{self.token_id}", self.on_behalf_of)


def person_id(issuer: str, subject: str) -> str:
    """The stable id of a person signed in through OpenID Connect (``oidc_`` and 20 hex digits of a digest of
    issuer and subject): short enough for the columns holding a caller's id, and naming neither."""
    return "oidc_" + hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:20]


def acting_for(principal: Principal, staff_id: str) -> Principal:
    """The principal acting for ``staff_id`` (the ``X-On-Behalf-Of`` header).

    Raises:
        PermissionDeniedError: the token's role may not act for someone (only system tokens may).
        InvalidInputError: ``staff_id`` is not a staff identifier (1-64 letters, digits, ``. _ : @ -``).
    """
    if principal.role not in ACTING_FOR_ROLES:
        raise PermissionDeniedError(
            f"a {principal.role} token acts for its holder: only system tokens may send X-On-Behalf-Of"
        )
    if not _STAFF_ID.match(staff_id):
        raise InvalidInputError(
            "X-On-Behalf-Of must be a staff identifier",
            [Problem("1-64 letters, digits or . _ : @ - (a staff identifier, never a name)", field="X-On-Behalf-Of")],
        )
    return dataclasses.replace(principal, on_behalf_of=staff_id)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# An ISO 8601 duration in weeks, days, hours and minutes: P90D, P12W, PT8H, P1DT12H. Years and months
# are refused: their length depends on the calendar, and a token's lifetime should not.
_LIFETIME = re.compile(r"^P(?!$)(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?=\d)(?:(\d{1,6})H)?(?:(\d{1,7})M)?)?$")
MAX_LIFETIME = timedelta(days=3660)


def parse_lifetime(text: str) -> timedelta:
    """A token lifetime written as an ISO 8601 duration (``P90D``, ``P12W``, ``PT8H``, ``P1DT12H``).

    Raises:
        InvalidInputError: not such a duration, zero, longer than ten years, or in years or months.
    """
    match = _LIFETIME.match(text.strip().upper())
    if match is None:
        raise InvalidInputError(
            f"{text[:40]!r} is not a lifetime",
            [
                Problem(
                    "an ISO 8601 duration in weeks, days, hours or minutes, e.g. P90D, P12W, PT8H", field="/expires_in"
                )
            ],
        )
    weeks, days, hours, minutes = (int(part or 0) for part in match.groups())
    lifetime = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise InvalidInputError(
            "lifetime out of range", [Problem("more than nothing and at most ten years", field="/expires_in")]
        )
    return lifetime


def create_token(
    session: Session,
    role: str,
    label: str,
    clock: Clock,
    expires_in: timedelta | None = None,
    patient_ref: str | None = None,
    *,
    organisation: str | None = None,
    teams: list[str] | None = None,
    staff_id: str | None = None,
) -> tuple[str, str]:
    """Create a token for ``role``, valid for ``expires_in`` (None: until revoked), reaching the patients of
    ``organisation`` (None: every organisation) and of ``teams`` in it (None or empty: every team), held by
    the member of staff ``staff_id`` (None: nobody named); return ``(token_id, secret)``. The secret is not
    stored. A patient's token names its patient (``patient_ref``); no other role's token does.

    A token with a holder acts for them (its actor is ``author:tok_... for staff:<id>``): four eyes
    (:mod:`engine.four_eyes`) then knows a second token of the same holder is the same person, and
    only a token with a holder (or a person signed in) may activate a version or approve a migration.

    Raises:
        InvalidInputError: for an unknown role, a label longer than 200 characters, a lifetime that is
            not positive, a patient token without a valid patient reference, or another role's with one,
            an organisation or team that is not an identifier, teams without an organisation, or a holder
            that is not a staff identifier or given for a system token (a system names the staff it acts
            for per request, X-On-Behalf-Of) or a patient's.
    """
    if organisation is not None:
        check_name(organisation, "/organisation")
    if teams:
        if organisation is None:
            raise InvalidInputError(
                "teams belong to an organisation",
                [Problem("name the organisation the teams belong to", field="/organisation")],
            )
        team_names: frozenset[str] | None = check_teams(teams, "/teams")
    else:
        team_names = None
    if role not in ROLES:
        raise InvalidInputError(
            f"unknown role {role!r}", [Problem(f"must be one of {', '.join(ROLES)}", field="/role")]
        )
    if (role == PATIENT_ROLE) != (patient_ref is not None):
        raise InvalidInputError(
            "a patient token names its patient, and only a patient token does",
            [Problem("give --patient-ref for role patient, and only for it", field="/patient_ref")],
        )
    if patient_ref is not None and not _PATIENT_REF.match(patient_ref):
        raise InvalidInputError(
            "patient_ref must be an external identifier",
            [Problem("letters, digits and . _ : / - (at most 64), never a name", field="/patient_ref")],
        )
    if staff_id is not None and (role in ACTING_FOR_ROLES or role == PATIENT_ROLE or not _STAFF_ID.match(staff_id)):
        raise InvalidInputError(
            "a token's holder is a staff identifier, for a person's own token",
            [
                Problem(
                    "1-64 letters, digits or . _ : @ - (never a name); system tokens send X-On-Behalf-Of instead",
                    field="/staff_id",
                )
            ],
        )
    if len(label) > 200:
        raise InvalidInputError("label too long", [Problem("at most 200 characters", field="/label")])
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInputError("lifetime out of range", [Problem("must be positive", field="/expires_in")])
    token_id = "tok_" + uuid.uuid4().hex[:16]
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        ApiToken(
            id=token_id,
            secret_sha256=_digest(secret),
            role=role,
            label=label,
            created_at=now,
            revoked_at=None,
            expires_at=None if expires_in is None else now + expires_in,
            patient_ref=patient_ref,
            organisation=organisation,
            teams=None if team_names is None else json.dumps(sorted(team_names)),
            staff_id=staff_id,
        )
    )
    session.flush()
    return token_id, secret


def token_is_live(token: ApiToken, now: datetime) -> bool:
    """Neither revoked nor past its expiry."""
    return token.revoked_at is None and (token.expires_at is None or now < token.expires_at)


def authenticate(session: Session, secret: str, clock: Clock) -> Principal:
    """The principal holding ``secret``.

    Raises:
        InvalidTokenError: unknown, revoked or expired token (one message for all three).
    """
    digest = _digest(secret)
    token = session.scalars(select(ApiToken).where(ApiToken.secret_sha256 == digest)).first()
    # The lookup is by an index on the hash; compare in constant time anyway.
    if token is None or not hmac.compare_digest(token.secret_sha256, digest) or not token_is_live(token, clock.now()):
        raise InvalidTokenError("the bearer token is unknown, expired or revoked")
    return principal_of_token(token)


def principal_of_token(token: ApiToken) -> Principal:
    """The principal a (live) token stands for, with its organisation and teams (a patient's: its patient).
    A held token acts for its holder, as a system token acts for the staff it names (the trail shows both)."""
    teams = frozenset(json.loads(token.teams)) if token.teams else None
    return Principal(
        role=token.role,
        token_id=token.id,
        label=token.label,
        patient_ref=token.patient_ref,
        organisation=token.organisation,
        teams=teams if token.organisation is not None else None,
        on_behalf_of=token.staff_id,
    )


@dataclass(frozen=True)
class TokenInfo:
    """A token as listings show it: never its secret, nor the secret's hash."""

    id: str
    role: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    organisation: str | None = None
    teams: tuple[str, ...] | None = None


def list_tokens(session: Session, *, include_revoked: bool = True, now: datetime | None = None) -> list[TokenInfo]:
    """Every token, oldest first (without secrets or their hashes); without ``include_revoked`` only the
    live ones: not revoked, and not expired at ``now`` (when given)."""
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
        if now is not None:
            query = query.where(ApiToken.expires_at.is_(None) | (ApiToken.expires_at > now))
    return [
        TokenInfo(
            t.id,
            t.role,
            t.label,
            t.created_at,
            t.revoked_at,
            t.expires_at,
            t.organisation,
            tuple(json.loads(t.teams)) if t.teams else None,
        )
        for t in session.scalars(query)
    ]


def revoke_token(session: Session, token_id: str, clock: Clock) -> None:
    """Raises: NotFoundError."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no token {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = clock.now()


def end_web_session(session: Session, session_id: str, now: datetime, useless_after: datetime) -> None:
    """Record the web session ``session_id`` as signed out: a copy of its cookie is refused from now on.
    ``useless_after``: when every copy of the cookie has expired anyway (the row may be purged then).
    Ending a session twice keeps the first record."""
    if session.get(EndedWebSession, session_id) is None:
        session.add(EndedWebSession(id=session_id, ended_at=now, useless_after=useless_after))
        session.flush()


def web_session_ended(session: Session, session_id: str) -> bool:
    """Whether the web session ``session_id`` was signed out (one primary-key lookup)."""
    return session.get(EndedWebSession, session_id) is not None


def purge_ended_web_sessions(session: Session, now: datetime) -> int:
    """Delete the records of signed-out web sessions whose cookies have all expired; returns how many.
    ``carepath worker`` calls this with its housekeeping."""
    result = session.execute(delete(EndedWebSession).where(EndedWebSession.useless_after <= now))
    return int(getattr(result, "rowcount", 0) or 0)


def authorize(principal: Principal, action: str) -> None:
    """Raises: PermissionDeniedError when the principal's role may not perform ``action``.

    An unknown action is a programming error (KeyError), never silently allowed.
    """
    if principal.role not in PERMISSIONS[action]:
        raise PermissionDeniedError(f"role {principal.role!r} may not perform {action!r}")
