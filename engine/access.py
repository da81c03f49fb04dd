"""Who may do what: API tokens, roles and the permission table.

A token is a random 32-byte URL-safe secret shown once when it is created; only its SHA-256 is
stored. A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so
there is nothing to brute-force, and every request is authenticated.

Roles (issue 6):

* ``system``    -- integrating systems (EHR, patient app): start pathways, advance tasks, send messages,
  read care plans and summaries (patient apps show them)
* ``clinician`` -- complete tasks, read instances and care plans, move care plan items on, read an
  instance's event trail and its rule evaluations
* ``author``    -- validate and deploy pathway (and rule) versions, migrate instances to a new version
* ``auditor``   -- read-only: instances, documents, rule evaluations, event trails and their verification,
  and who looked at which patient's records (the access log)

:data:`PERMISSIONS` is the one table the HTTP API (``/v1`` and ``/fhir/R4``) enforces and the role x
endpoint tests read. What describes the API (``/v1/``, ``/v1/openapi.json``, ``/fhir/R4/metadata``)
needs no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db.models import ApiToken
from engine.errors import InvalidInputError, InvalidTokenError, NotFoundError, PermissionDeniedError, Problem

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "ApiToken",
    "Principal",
    "TokenInfo",
    "authenticate",
    "authorize",
    "create_token",
    "list_tokens",
    "revoke_token",
]

ROLES = ("system", "clinician", "author", "auditor")
ALL_ROLES = frozenset(ROLES)

# action -> roles allowed. Every API operation names exactly one action.
PERMISSIONS: dict[str, frozenset[str]] = {
    "pathways.read": ALL_ROLES,
    "pathways.validate": frozenset({"author"}),
    "pathways.deploy": frozenset({"author"}),
    "instances.start": frozenset({"system"}),
    "instances.read": frozenset({"system", "clinician", "auditor"}),
    "instances.manage": frozenset({"system", "clinician"}),  # suspend, resume, cancel, retry
    "tasks.read": frozenset({"system", "clinician"}),
    "tasks.complete": frozenset({"system", "clinician"}),
    "messages.send": frozenset({"system"}),
    "events.read": frozenset({"auditor", "clinician"}),
    "audit.verify": frozenset({"auditor"}),
    "documents.read": frozenset({"system", "clinician", "auditor"}),  # care plan, end of treatment summary
    "care_plans.update": frozenset({"clinician"}),
    "evaluations.read": frozenset({"auditor", "clinician"}),
    "pathways.migrate": frozenset({"author"}),
    "access_log.read": frozenset({"auditor"}),  # who looked at a patient's records (engine.access_log)
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    role: str
    token_id: str
    label: str

    @property
    def actor(self) -> str:
        """How the caller is named in the event trail (never a secret)."""
        return f"{self.role}:{self.token_id}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(session: Session, role: str, label: str, clock: Clock) -> tuple[str, str]:
    """Create a token for ``role``; return ``(token_id, secret)``. The secret is not stored.

    Raises:
        InvalidInputError: for an unknown role or a label longer than 200 characters.
    """
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}",
                                [Problem(f"must be one of {', '.join(ROLES)}", field="/role")])
    if len(label) > 200:
        raise InvalidInputError("label too long", [Problem("at most 200 characters", field="/label")])
    token_id = "tok_" + uuid.uuid4().hex[:16]
    secret = secrets.token_urlsafe(32)
    session.add(ApiToken(id=token_id, secret_sha256=_digest(secret), role=role, label=label,
                         created_at=clock.now(), revoked_at=None))
    session.flush()
    return token_id, secret


def authenticate(session: Session, secret: str) -> Principal:
    """The principal holding ``secret``.

    Raises:
        InvalidTokenError: unknown or revoked token.
    """
    digest = _digest(secret)
    token = session.scalars(select(ApiToken).where(ApiToken.secret_sha256 == digest)).first()
    # The lookup is by an index on the hash; compare in constant time anyway.
    if token is None or not hmac.compare_digest(token.secret_sha256, digest) or token.revoked_at is not None:
        raise InvalidTokenError("the bearer token is unknown or revoked")
    return Principal(role=token.role, token_id=token.id, label=token.label)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listings show it: never its secret, nor the secret's hash."""

    id: str
    role: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token, oldest first (without secrets or their hashes)."""
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [TokenInfo(t.id, t.role, t.label, t.created_at, t.revoked_at) for t in session.scalars(query)]


def revoke_token(session: Session, token_id: str, clock: Clock) -> None:
    """Raises: NotFoundError."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no token {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = clock.now()


def authorize(principal: Principal, action: str) -> None:
    """Raises: PermissionDeniedError when the principal's role may not perform ``action``.

    An unknown action is a programming error (KeyError), never silently allowed.
    """
    if principal.role not in PERMISSIONS[action]:
        raise PermissionDeniedError(f"role {principal.role!r} may not perform {action!r}")
