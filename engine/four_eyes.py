"""Four eyes: who deployed or asked for a change, whether an approver is a second person, and the
tamper-evident record of both.

A new pathway version (:mod:`engine.pathways.versions`), a new rule-set version
(:mod:`engine.rules.activation`) and a migration of running instances
(:mod:`engine.instances.migration_requests`) each need two people: one deploys or asks, a second
activates or approves. They are compared as *persons*, read from the actors the trail records
(:attr:`engine.access.Principal.actor`), so a second token of the same person, or a system acting
for them, is still the same person:

* ``author:staff:jsmith`` (signed in through OpenID Connect) -> ``staff:jsmith``
* ``author:tok_... for staff:jsmith`` (a token acting for, or held by, a member of staff) -> ``staff:jsmith``
* ``cli:staff:jsmith`` (``carepath ... --as jsmith``) -> ``staff:jsmith``
* ``author:tok_...``, ``cli``, ``system`` -> no person

An approver must be a person: a token that names nobody could be anyone's second token. Who asked
may be no person (a deployment pipeline's token, or ``system`` loading the pathways folder); any
person may then approve.

**The deployment trail.** The rows that say who deployed and who activated (``pathway_versions``,
``rule_set_activations``, ``migration_requests``) are ordinary rows: someone with database access
could activate a version, or change who did, by editing one. So every deploy, activation,
migration request and approval is also written, in the same transaction, to the deployment trail
(:func:`record_deployment`): one hash chain (:func:`engine.audit.link_hash`) whose events are
authenticated with the event trail's key (:class:`engine.audit.TrailKey`), each carrying the
digest of the content it deployed (a pathway's files and compiled spec, a rule set's text and
catalogue, a
migration's dry-run report). :func:`verify_deployment_trail` (``carepath audit verify``) checks
the chain, and that the rows say exactly what the trail says: an edited, added, deleted or
reordered event, or a row edited, added or deleted without its event, is a problem. The first event
is a *baseline*: the rows as they were when the trail began (an upgraded database's history).

Owns ``deployment_events`` and ``deployment_trail_head``; may import ``engine.audit`` (how an actor
acting for staff is written; the chaining and the key), ``engine.db`` and the shared modules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import GENESIS, TrailProblem, canonical_json, data_digest, link_hash, split_actor, trail_key_of
from engine.db.models import (
    DeploymentEvent,
    DeploymentTrailHead,
    MigrationRequest,
    PathwayVersion,
    RuleSetActivation,
)
from engine.errors import FourEyesError

__all__ = [
    "DEPLOYMENT_EVENT_TYPES",
    "authenticate_existing_deployments",
    "content_digest",
    "person_of",
    "record_deployment",
    "require_second_person",
    "verify_deployment_trail",
]

_STAFF = "staff:"
# What each event type says about its row: it was made (deployed, asked for), or approved (activated).
_MADE = {"deployed", "migration_requested"}
_APPROVED = {"activated", "migration_approved"}
DEPLOYMENT_EVENT_TYPES = frozenset({"baseline", *_MADE, *_APPROVED})
_KINDS = ("pathway", "rule_set", "migration")
_MAC_DOMAIN = "carepath-deployment-event/1\n"


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
        raise FourEyesError(
            f"{what} needs a second author named as a person (signed in through the identity "
            "provider, or an author token held by a member of staff); this token names nobody"
        )
    if person == person_of(requested_by):
        raise FourEyesError(
            f"{what} needs a second author: {person} deployed or asked for it and may not approve it too"
        )
    return person


# --- the deployment trail ----------------------------------------------------------------------------


class _Fact(NamedTuple):
    """What the trail (or a row) says of one deployed thing: who made it when, its content's digest, who
    approved it when (None: pending)."""

    made_by: str
    made_at: str
    content: str
    approved_by: str | None
    approved_at: str | None


def content_digest(*texts: str | None) -> str:
    """The digest a deployed event records of what was deployed (the row's stored texts)."""
    return data_digest(list(texts))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _event_hash(event: Any) -> str:
    return link_hash(
        [
            event.seq,
            event.type,
            _iso(event.at),
            event.actor,
            event.kind,
            event.subject,
            event.version,
            event.payload,
            event.prev_hash,
        ]
    )


def record_deployment(
    session: Session,
    event_type: str,
    *,
    at: datetime,
    actor: str,
    kind: str,
    subject: str,
    version: str,
    content: str | None = None,
) -> None:
    """Append one event to the deployment trail, in the caller's transaction (with the row it records).

    ``kind`` is ``pathway`` (``subject`` its id), ``rule_set`` (its name) or ``migration`` (the request's id,
    ``version`` its target); ``content`` is :func:`content_digest` of what a ``deployed`` or
    ``migration_requested`` event records. The trail's head is locked while the event is written, so
    appends are one at a time. The first event ever is preceded by the baseline.

    Raises:
        ValueError: an unknown event type or kind.
    """
    if event_type not in DEPLOYMENT_EVENT_TYPES - {"baseline"} or kind not in _KINDS:
        raise ValueError(f"unknown deployment event {event_type!r} of {kind!r}")
    head = session.scalars(select(DeploymentTrailHead).where(DeploymentTrailHead.id == 1).with_for_update()).first()
    if head is None:  # a database made without the migration (metadata.create_all)
        head = DeploymentTrailHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    if head.seq == 0:
        rows = [[*key, *fact] for key, fact in sorted(_rows(session).items(), key=lambda item: item[0])]
        _append(session, head, "baseline", at, "system", "", "", "", canonical_json({"rows": rows}))
    _append(
        session,
        head,
        event_type,
        at,
        actor,
        kind,
        subject,
        version,
        canonical_json({} if content is None else {"content": content}),
    )


def _append(
    session: Session,
    head: DeploymentTrailHead,
    event_type: str,
    at: datetime,
    actor: str,
    kind: str,
    subject: str,
    version: str,
    payload: str,
) -> None:
    event = DeploymentEvent(
        seq=head.seq + 1,
        type=event_type,
        at=at,
        actor=actor,
        kind=kind,
        subject=subject,
        version=version,
        payload=payload,
        prev_hash=head.hash,
    )
    event.hash = _event_hash(event)
    key = trail_key_of(session)
    event.mac = key.mac(_MAC_DOMAIN, event.hash) if key is not None else None
    session.add(event)
    head.seq, head.hash = event.seq, event.hash
    session.flush()


def _rows(session: Session) -> dict[tuple[str, str, str], _Fact]:
    """What the rows say: every pathway version, rule-set version and migration request."""
    found: dict[tuple[str, str, str], _Fact] = {}
    for pathway in session.scalars(select(PathwayVersion)):
        found["pathway", pathway.pathway_id, pathway.version] = _Fact(
            pathway.deployed_by,
            _iso(pathway.deployed_at) or "",
            content_digest(pathway.files, pathway.spec, pathway.start_schema),
            pathway.activated_by,
            _iso(pathway.activated_at),
        )
    for ruleset in session.scalars(select(RuleSetActivation)):
        found["rule_set", ruleset.name, ruleset.version] = _Fact(
            ruleset.deployed_by,
            _iso(ruleset.deployed_at) or "",
            content_digest(ruleset.source, ruleset.catalogue_source),
            ruleset.activated_by,
            _iso(ruleset.activated_at),
        )
    for request in session.scalars(select(MigrationRequest)):
        found["migration", request.id, request.target_version] = _Fact(
            request.requested_by,
            _iso(request.requested_at) or "",
            content_digest(request.pathway_id, request.report),
            request.approved_by,
            _iso(request.approved_at),
        )
    return found


def verify_deployment_trail(session: Session, checkpointed: tuple[int, str] | None = None) -> list[TrailProblem]:
    """Check the deployment trail's chain, its authentication codes (with a trail key in the session) and
    its head, then that the rows say what it says; with ``checkpointed`` (a checkpoint's deployment head,
    :class:`engine.audit.Checkpoint`), that the chain still holds that event -- the trail cut back, with
    its rows and head made to agree, is found there. Returns the problems (empty when intact)."""
    key = trail_key_of(session)
    problems: list[TrailProblem] = []
    facts: dict[tuple[str, str, str], _Fact] = {}
    hashes: dict[int, str] = {}
    prev_hash, expected = GENESIS, 1
    for event in session.scalars(select(DeploymentEvent).order_by(DeploymentEvent.id)):
        hashes[event.seq] = event.hash
        where = f"deployment trail event {event.seq}"
        if event.seq != expected:
            problems.append(
                TrailProblem("", event.seq, f"{where}: out of order or missing events: expected event {expected}")
            )
        if event.prev_hash != prev_hash:
            problems.append(TrailProblem("", event.seq, f"{where}: does not follow the previous event (chain broken)"))
        if _event_hash(event) != event.hash:
            problems.append(TrailProblem("", event.seq, f"{where}: content was changed after it was written"))
        wrong = key.mac_problem(_MAC_DOMAIN, event.hash, event.mac) if key is not None else None
        if wrong is not None:
            problems.append(TrailProblem("", event.seq, f"{where}: {wrong}"))
        _apply(facts, event)
        prev_hash, expected = event.hash, event.seq + 1
    head = session.get(DeploymentTrailHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    if (head_seq, head_hash) != (expected - 1, prev_hash):
        problems.append(
            TrailProblem(
                "",
                None,
                f"deployment trail: ends at event {expected - 1}, its head says "
                f"{head_seq} (events deleted, or the head rewound)",
            )
        )
    if checkpointed is not None and hashes.get(checkpointed[0]) != checkpointed[1]:
        found = "rewritten" if checkpointed[0] in hashes else f"cut back: the trail now ends at event {expected - 1}"
        problems.append(
            TrailProblem("", checkpointed[0], f"deployment trail: the checkpoint saw event {checkpointed[0]}; {found}")
        )
    problems.extend(_compare(facts, _rows(session)))
    return problems


def authenticate_existing_deployments(session: Session) -> int:
    """Add authentication codes to deployment events written before a trail key was configured, when the
    chain verifies otherwise (a broken one is left as it is, for an auditor to see); returns how many
    (``carepath audit sign-existing``).

    Raises:
        ValueError: the session has no trail key.
    """
    key = trail_key_of(session)
    if key is None:
        raise ValueError("no trail key configured (CAREPATH_TRAIL_KEY_FILE)")
    unsigned = [
        event for event in session.scalars(select(DeploymentEvent).order_by(DeploymentEvent.id)) if event.mac is None
    ]
    if not unsigned or [p for p in verify_deployment_trail(session) if "not authenticated" not in p.message]:
        return 0
    for event in unsigned:
        event.mac = key.mac(_MAC_DOMAIN, event.hash)
    session.flush()
    return len(unsigned)


def _apply(facts: dict[tuple[str, str, str], _Fact], event: DeploymentEvent) -> None:
    """What one event says, added to what the events before it said."""
    try:
        payload = json.loads(event.payload)
    except ValueError:
        return  # its hash no longer matches: reported by the chain's check
    if event.type == "baseline":
        for kind, subject, version, *fact in payload.get("rows", []):
            facts[kind, subject, version] = _Fact(*fact)
        return
    key = (event.kind, event.subject, event.version)
    if event.type in _MADE:
        facts[key] = _Fact(event.actor, _iso(event.at) or "", str(payload.get("content")), None, None)
    elif event.type in _APPROVED and key in facts:
        facts[key] = facts[key]._replace(approved_by=event.actor, approved_at=_iso(event.at))
    elif event.type in _APPROVED:  # approved, never made: the row cannot match it
        facts[key] = _Fact("", "", "", event.actor, _iso(event.at))


def _compare(
    trail: dict[tuple[str, str, str], _Fact], rows: dict[tuple[str, str, str], _Fact]
) -> Iterable[TrailProblem]:
    labels = {"pathway": "pathway", "rule_set": "rule set", "migration": "migration request"}
    for key in sorted(trail.keys() | rows.keys()):
        kind, subject, version = key
        what = f"{labels.get(kind, kind)} {subject} version {version[:12]}"
        said, found = trail.get(key), rows.get(key)
        if found is None:
            yield TrailProblem("", None, f"{what}: in the deployment trail, not in the database (deleted)")
        elif said is None:
            yield TrailProblem("", None, f"{what}: not in the deployment trail (written without it)")
        elif (found.made_by, found.made_at) != (said.made_by, said.made_at):
            yield TrailProblem(
                "",
                None,
                f"{what}: deployed or asked for by {found.made_by} at {found.made_at} in "
                f"the database, by {said.made_by} at {said.made_at} in the deployment trail",
            )
        elif found.content != said.content:
            yield TrailProblem("", None, f"{what}: its stored content is not what was deployed (edited)")
        elif (found.approved_by, found.approved_at) != (said.approved_by, said.approved_at):
            yield TrailProblem(
                "",
                None,
                f"{what}: activated or approved by {found.approved_by or 'nobody'} at "
                f"{found.approved_at or '-'} in the database, by "
                f"{said.approved_by or 'nobody'} at {said.approved_at or '-'} in the "
                "deployment trail",
            )
