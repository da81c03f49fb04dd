"""The event trail: append-only, hash-chained per instance, authenticated, checkpointed, verifiable.

Each event's hash covers its own fields and the previous event's hash; the instance row keeps the
sequence number and hash of its newest event. Editing, reordering or deleting any row (the newest
included) therefore breaks verification. Payloads never carry patient data: task data is recorded
as a SHA-256 digest of its canonical JSON; incidents name the error's type and element only; a
person's reason for an act (cancelling, suspending, correcting data, moving a care plan item) is a
code (:data:`REASON_PATTERN`, :func:`check_reason`), never free text, which could name the patient.

A hash chain alone does not survive someone who can write to the database: they can rewrite a
chain consistently, head included, or delete an instance with its events. Three more things make
the trail survive its administrators:

* **Authentication.** Each event also carries ``mac``, an HMAC-SHA256 of its hash keyed by a secret
  the database does not hold (:class:`TrailKey`, read from ``CAREPATH_TRAIL_KEY_FILE``). A chain
  rewritten without the key fails its MACs.
* **State digests.** An event that ends a step which stored a new workflow state records
  ``state_digest``, the SHA-256 of that state's text (part of the event's hash): an edit of the
  stored state no longer matches the newest digest. The column holds the text compressed
  (``engine.db.stored_state``); the digest is of the text, so it does not depend on how it is stored,
  and a stored value that cannot be inflated is reported as a problem like any other edit.
* **State seals.** Checking a digest of the text means inflating every state (about 5 KB stored,
  50 KB of text): a third of a verification's time. So the writer, holding the key, also stores on
  the instance row ``state_mac``, an HMAC binding the instance, the digest its newest event records
  and the SHA-256 of the bytes written (:meth:`TrailKey.state_mac`). Verification accepts a stored
  state whose seal matches without inflating it: only the key's holder could have sealed those bytes
  to that digest. A seal missing (no key, a row written before seals), made with another key or not
  matching (states rewritten by a migration, an edit) is no finding by itself: the state is then
  checked the slow way, against the text digest, which alone decides.
* **Checkpoints.** :func:`make_checkpoint` lists every instance's head (sequence and hash) with a
  digest of the set, signed with the key; the worker writes one on a schedule to append-only
  storage outside the database (:func:`write_checkpoint`, ``CAREPATH_CHECKPOINT_DIR``). Against the
  latest checkpoint, a deleted instance, or a trail cut back or rewritten below its checkpointed
  head, is found even when the database's own rows agree with each other.

:func:`verify_trail` reports all of it as :class:`TrailProblem` s (a broken trail is a finding for an
auditor, not an error that stops clinical work). What it cannot see: changes made with the key
(whoever holds it can sign anything), and an instance created and deleted, or events appended and
removed, between two checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import DateTime, LargeBinary, Table, bindparam, func, select, text, type_coerce, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, sessionmaker

from engine.db.models import DeploymentTrailHead, InstanceEvent, PathwayInstance
from engine.db.session import TRAIL_KEY, read_only
from engine.db.stored_state import UnreadableStateError, decode_state
from engine.errors import InvalidInputError, Problem

__all__ = [
    "CHECKPOINT_FORMAT",
    "EVENT_TYPES",
    "GENESIS",
    "ChainHead",
    "Checkpoint",
    "IdRange",
    "ProgressCallback",
    "Sealed",
    "REASON_PATTERN",
    "TrailKey",
    "TrailProblem",
    "append_event",
    "authenticate_existing",
    "canonical_json",
    "check_reason",
    "checkpoint_problems",
    "count_instances",
    "data_digest",
    "event_hash",
    "event_text",
    "export_checkpoint",
    "has_pending_events",
    "latest_checkpoint",
    "link_hash",
    "make_checkpoint",
    "on_behalf_of",
    "reason_problem",
    "seal_events",
    "seal_existing_states",
    "split_actor",
    "state_digest",
    "take_pending_events",
    "trail_key_of",
    "verify_trail",
    "write_checkpoint",
]

GENESIS = "0" * 64
_PENDING = "carepath.pending_events"
_EVENTS = cast(Table, InstanceEvent.__table__)
EVENT_TYPES = frozenset(
    {
        "started",
        "task_completed",
        "timer_fired",
        "message_received",
        "suspended",
        "resumed",
        "cancelled",
        "migrated",
        "error",
        "retried",
        "completed",
        "rules_evaluated",
        "care_plan_updated",
        "data_corrected",
        "decision_evaluated",
        "reassessment_started",
        "referral_overdue",
        "referral_escalation_completed",
        "summary_overdue",
        "summary_overdue_closed",
        "summary_written",
        "care_team_changed",
        "pathway_checked",
        "pathway_check_asked",
    }
)
CHECKPOINT_FORMAT = "carepath-trail-checkpoint/1"
# A reason recorded in the trail: a code, so that no free text (which could name the patient) gets in.
REASON_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_EVENT_MAC_DOMAIN = "carepath-event/1\n"
_DATA_MAC_DOMAIN = "carepath-data-digest/1\n"  # a data digest is never a valid event or checkpoint MAC
_CHECKPOINT_MAC_DOMAIN = "carepath-checkpoint/1\n"
_STATE_MAC_DOMAIN = "carepath-state-seal/1\n"


# An event's actor is the token that acted; a system token acting for a member of staff
# (X-On-Behalf-Of) is recorded as "<role>:<token id> for staff:<staff id>", in the one ``actor``
# field the hash covers, so the person cannot be removed or changed without breaking the chain.
_FOR_STAFF = " for staff:"


def on_behalf_of(actor: str, staff_id: str | None) -> str:
    """The actor recorded for a token (``actor``) acting for ``staff_id`` (None: for itself)."""
    return actor if staff_id is None else f"{actor}{_FOR_STAFF}{staff_id}"


def split_actor(actor: str) -> tuple[str, str | None]:
    """(the token's actor, the staff id it acted for or None) of a recorded actor."""
    token, found, staff_id = actor.partition(_FOR_STAFF)
    return (token, staff_id) if found else (actor, None)


# One encoder for every canonical text: json.dumps with these options builds a new encoder on every
# call, a third of the cost of hashing an event when a verification hashes millions of them.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def reason_problem(reason: Any, field: str = "/reason") -> Problem | None:
    """None when ``reason`` is a code (:data:`REASON_PATTERN`); else what is wrong, naming ``field``
    (never quoting the text: it may name the patient)."""
    if isinstance(reason, str) and REASON_PATTERN.fullmatch(reason):
        return None
    return Problem(
        "a reason is a code, not free text: lower case letters, digits and _ (at most 64), e.g. patient_request",
        field=field,
    )


def check_reason(reason: Any) -> str | None:
    """``reason`` as a code, or None when absent (None or ``""``).

    Raises:
        InvalidInputError: not a code (free text would reach the event trail).
    """
    if reason is None or reason == "":
        return None
    problem = reason_problem(reason)
    if problem is not None:
        raise InvalidInputError("a reason is a code, not free text", [problem])
    return str(reason)


def data_digest(data: Any, key: TrailKey | None = None) -> str:
    """The digest an event records of data (task data, a message's body) in place of the data.

    With the trail key it is an HMAC under the key, ``hmac-sha256:<key id>:<hex>``: a patient's values
    are small (a score from 0 to 10, a date of birth), so a plain hash of them is found by trying each
    value, and anyone reading the trail (an auditor, an export) would read the values. Only the key's
    holder can check data against it. Without a key (development) it is ``sha256:<hex>``, and the
    operations guide says what that does not hide.
    """
    text = canonical_json(data).encode()
    if key is None:
        return "sha256:" + hashlib.sha256(text).hexdigest()
    return "hmac-sha256:" + key.mac(_DATA_MAC_DOMAIN, text)


def state_digest(state: str) -> str:
    """The digest an event records of the stored workflow state (its exact text)."""
    return "sha256:" + hashlib.sha256(state.encode()).hexdigest()


def link_hash(fields: list[Any]) -> str:
    """The hash of one link of a chain: SHA-256 of its fields' canonical JSON (the previous link's hash
    among them). Every chain of the trail is made of these: each instance's events, and the deployment
    trail (:mod:`engine.four_eyes`)."""
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


# The string encoder canonical_json's encoder uses (ensure_ascii=False): json's own C function.
_json_string = json.encoder.encode_basestring


def _json_or_null(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


def event_text(event: Any) -> str:
    """What an event's hash is of: the canonical JSON of its fields (``link_hash``'s text), written out
    here for an event's known types (text, a whole number, None) -- the same text, in about half the
    time of the general encoder, which a verification pays 22 times an instance."""
    text = (
        f"[{_json_string(event.instance_id)},{event.seq:d},{_json_string(event.type)},"
        f"{_json_string(event.at.isoformat())},{_json_string(event.actor)},{_json_string(event.pathway_version)},"
        f"{_json_or_null(event.element)},{_json_or_null(event.task_id)},{_json_string(event.payload)},"
        f"{_json_string(event.prev_hash)}"
    )
    digest = getattr(event, "state_digest", None)  # events written before digests hash as they did
    return text + ("]" if digest is None else f",{_json_string(digest)}]")


def event_hash(event: Any) -> str:
    """The hash of one event (anything with the event's fields as attributes): its fields and the
    previous event's hash, and its state digest when it has one (:func:`event_text`)."""
    return hashlib.sha256(event_text(event).encode()).hexdigest()


@dataclass(frozen=True, repr=False)
class TrailKey:
    """The secret that authenticates the trail. Its id (the first 8 hex digits of a hash of the
    secret) is stored with each MAC, so a MAC made with another key is told apart from a forged one.
    The secret never appears in a repr."""

    secret: bytes

    def __repr__(self) -> str:
        return f"TrailKey(id={self.key_id})"

    @functools.cached_property
    def key_id(self) -> str:
        return hashlib.sha256(b"carepath-trail-key-id\n" + self.secret).hexdigest()[:8]

    @functools.cached_property
    def _keyed(self) -> hmac.HMAC:
        """An HMAC with the key set and no message, copied for each code: setting the key (padding
        it, hashing it first when it is longer than SHA-256's 64-byte block) cost up to as much again
        as the code itself, and a verification makes one code per event. It is only ever copied,
        never updated, so threads may share it."""
        return hmac.new(self.secret, digestmod=hashlib.sha256)

    @functools.cached_property
    def _keyed_event(self) -> hmac.HMAC:
        """The same, already fed the events' domain: the code a verification makes most often."""
        keyed = self._keyed.copy()
        keyed.update(_EVENT_MAC_DOMAIN.encode())
        return keyed

    def mac(self, domain: str, message: str | bytes) -> str:
        keyed = self._keyed.copy()
        keyed.update(domain.encode() + message if isinstance(message, bytes) else (domain + message).encode())
        return f"{self.key_id}:{keyed.hexdigest()}"

    def event_mac(self, event_hash: str) -> str:
        keyed = self._keyed_event.copy()
        keyed.update(event_hash.encode())
        return f"{self.key_id}:{keyed.hexdigest()}"

    def state_mac(self, instance_id: str, digest: str, stored: bytes) -> str:
        """The seal of an instance's stored state: binds its bytes to the text digest its newest event
        records (:func:`seal_events`), so that verification can take the bytes for the text without
        inflating them. The instance is in it, so a state moved to another row fails its seal."""
        return self.mac(_STATE_MAC_DOMAIN, f"{instance_id}\n{digest}\n{hashlib.sha256(stored).hexdigest()}")

    def mac_problem(self, domain: str, message: str, mac: str | None) -> str | None:
        """What is wrong with ``mac`` as this key's code of ``message`` (None: nothing)."""
        if mac is None:
            return "not authenticated: written without the trail key"
        # compare_digest refuses a str with non-ASCII characters: such a MAC was edited, not failed on.
        if mac.isascii() and hmac.compare_digest(mac, self.mac(domain, message)):
            return None
        if mac.split(":", 1)[0] != self.key_id:
            return f"authenticated with another key ({mac.split(':', 1)[0]})"
        return "authentication code does not match: rewritten without the key"


@functools.lru_cache(maxsize=8)
def _key(secret: bytes) -> TrailKey:
    return TrailKey(secret)


def trail_key_of(session: Session) -> TrailKey | None:
    """The trail key the session was made with (``engine.db.session.make_session_factory``), if any."""
    secret = session.info.get(TRAIL_KEY)
    return _key(secret) if secret else None


class ChainHead(Protocol):
    """What an instance must offer to have events appended: an ORM row or an instance record."""

    id: str
    event_seq: int
    event_head: str


def append_event(
    session: Session,
    instance: ChainHead,
    event_type: str,
    *,
    at: datetime,
    actor: str,
    pathway_version: str,
    element: str | None = None,
    task_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event to an instance's trail; ``engine.instances.store`` writes it with the instance.

    Raises:
        ValueError: for an unknown event type.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = SimpleNamespace(
        instance_id=instance.id,
        seq=instance.event_seq + 1,
        type=event_type,
        at=at,
        actor=actor,
        pathway_version=pathway_version,
        element=element,
        task_id=task_id,
        payload=canonical_json(payload or {}),
        prev_hash=instance.event_head,
        state_digest=None,
        mac=None,
    )
    event.hash = event_hash(event)
    # Written by the instance's one writer (engine.instances.store) in one multi-row INSERT with the
    # instance's guarded update: events are never changed, so they need none of the ORM's bookkeeping.
    session.info.setdefault(_PENDING, []).append(vars(event))
    instance.event_seq = event.seq
    instance.event_head = event.hash
    return vars(event)


def take_pending_events(session: Session) -> list[dict[str, Any]]:
    """The events appended in this session and not written yet, for a writer that writes them itself
    (:mod:`engine.instances.store`); they are no longer pending afterwards."""
    return cast(list[dict[str, Any]], session.info.pop(_PENDING, None) or [])


def has_pending_events(session: Session, instance_id: str) -> bool:
    """Whether an event of the instance was appended in this session and is not written yet."""
    return any(event["instance_id"] == instance_id for event in session.info.get(_PENDING, ()))


class Sealed(NamedTuple):
    """What the instance row keeps of its sealed events: its new head hash and its state's seal."""

    head: str
    state_mac: str | None


def seal_events(
    session: Session, events: list[dict[str, Any]], states: Mapping[str, tuple[str, bytes]]
) -> dict[str, Sealed]:
    """Finish events about to be written: the newest event of each instance in ``states`` (its new
    state's text and the bytes stored) records the digest of that text (its hash is recomputed) and
    the state is sealed to it (:meth:`TrailKey.state_mac`), then every event gets its MAC when the
    session has a trail key. Returns, for each instance whose newest event changed, its new head hash
    and state seal, for the writer to store on the instance row. One SHA-256 per state's text and one
    per its stored bytes, one HMAC per event."""
    newest = {pending["instance_id"]: pending for pending in events}  # the last of each instance wins
    sealed: dict[str, Sealed] = {}
    key = trail_key_of(session)
    for instance_id, (state, stored) in states.items():
        last = newest.get(instance_id)
        if last is None:
            continue
        last["state_digest"] = state_digest(state)
        last["hash"] = event_hash(SimpleNamespace(**last))
        seal = None if key is None else key.state_mac(instance_id, last["state_digest"], stored)
        sealed[instance_id] = Sealed(last["hash"], seal)
    if key is not None:
        for event in events:
            event["mac"] = key.event_mac(event["hash"])
    return sealed


@dataclass(frozen=True)
class TrailProblem:
    instance_id: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        if not self.instance_id:  # about a checkpoint, not an instance
            return self.message
        where = f"instance {self.instance_id}" + (f" event {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.message}"


# --- checkpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """Every instance's trail head at one moment: ``heads`` maps instance id -> (sequence, hash)."""

    at: str
    heads: dict[str, tuple[int, str]]
    digest: str
    key_id: str | None = None
    mac: str | None = None
    source: str = ""  # the file it was read from, for messages
    # The deployment trail's head (engine.four_eyes), signed with the rest; None in checkpoints made
    # before it was kept (they sign what they signed) and while the deployment trail is empty.
    deployment_head: tuple[int, str] | None = None

    def _parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "at": self.at,
            "instance_count": len(self.heads),
            "digest": self.digest,
        }
        if self.deployment_head is not None:
            parts["deployment_head"] = list(self.deployment_head)
        return parts

    def signed_part(self) -> str:
        return canonical_json(self._parts())

    def as_json(self) -> str:
        return canonical_json(
            {
                **self._parts(),
                "key_id": self.key_id,
                "mac": self.mac,
                "heads": [[i, seq, head] for i, (seq, head) in sorted(self.heads.items())],
            }
        )


def _heads_digest(heads: Mapping[str, tuple[int, str]]) -> str:
    listed = [[i, seq, head] for i, (seq, head) in sorted(heads.items())]
    return "sha256:" + hashlib.sha256(canonical_json(listed).encode()).hexdigest()


def make_checkpoint(session: Session, at: datetime) -> Checkpoint:
    """Every instance's head as committed now, with the digest of the set, signed with the session's
    trail key (unsigned without one: it still finds deletions made by someone without the folder)."""
    heads = {
        i: (int(seq), str(head))
        for i, seq, head in session.execute(
            select(PathwayInstance.id, PathwayInstance.event_seq, PathwayInstance.event_head)
        )
    }
    deployments = session.get(DeploymentTrailHead, 1)
    deployment_head = (deployments.seq, deployments.hash) if deployments is not None and deployments.seq else None
    unsigned = Checkpoint(at.isoformat(), heads, _heads_digest(heads), deployment_head=deployment_head)
    key = trail_key_of(session)
    if key is None:
        return unsigned
    return dataclasses.replace(unsigned, key_id=key.key_id, mac=key.mac(_CHECKPOINT_MAC_DOMAIN, unsigned.signed_part()))


def write_checkpoint(folder: Path, checkpoint: Checkpoint, at: datetime) -> Path:
    """Add the checkpoint to ``folder`` as a new file; no file there is ever overwritten.

    The file appears whole or not at all: it is written under a temporary name, flushed to disk and
    then hard-linked to its final name, which fails rather than replace an existing file. Keep the
    folder on append-only storage (``chattr +a``, a WORM bucket mounted as a folder, another host's
    share without delete rights): docs/operations.md.

    Raises:
        OSError: the folder cannot be written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{at.strftime('%Y%m%dT%H%M%S%fZ')}-{checkpoint.digest.split(':')[1][:12]}.json"
    final = folder / name
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(checkpoint.as_json() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, final)
        except FileExistsError:
            if final.read_text(encoding="utf-8").strip() != checkpoint.as_json():
                raise
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final


def export_checkpoint(sessions: sessionmaker[Session], folder: Path, at: datetime) -> Path:
    """Make a checkpoint from one consistent read and add it to ``folder`` (``carepath audit
    checkpoint``, and the worker on a schedule).

    Raises:
        OSError: the folder cannot be written.
    """
    with read_only(sessions) as session:
        checkpoint = make_checkpoint(session, at)
    return write_checkpoint(folder, checkpoint, at)


def latest_checkpoint(folder: Path) -> Checkpoint | None:
    """The newest checkpoint in ``folder`` (by its name's time), or None when there is none.

    Raises:
        ValueError: the newest file is not a checkpoint (damaged or replaced: itself a finding).
    """
    files = sorted(folder.glob("checkpoint-*.json")) if folder.is_dir() else []
    if not files:
        return None
    try:
        data = json.loads(files[-1].read_text(encoding="utf-8"))
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("unknown format")
        heads = {str(i): (int(seq), str(head)) for i, seq, head in data["heads"]}
        deployment_head = None
        if data.get("deployment_head") is not None:
            seq, head = data["deployment_head"]
            deployment_head = (int(seq), str(head))
        return Checkpoint(
            str(data["at"]),
            heads,
            str(data["digest"]),
            None if data.get("key_id") is None else str(data["key_id"]),
            None if data.get("mac") is None else str(data["mac"]),
            str(files[-1]),
            deployment_head,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the newest checkpoint {files[-1]} cannot be read as one ({type(exc).__name__})") from exc


def checkpoint_problems(checkpoint: Checkpoint, key: TrailKey | None) -> list[TrailProblem]:
    """What is wrong with the checkpoint itself: heads that do not match its digest, a signature
    missing, made with another key or not matching (:func:`verify_trail` reports these)."""
    where = checkpoint.source or "the checkpoint"
    problems = []
    if _heads_digest(checkpoint.heads) != checkpoint.digest or len(checkpoint.heads) != len(set(checkpoint.heads)):
        problems.append(TrailProblem("", None, f"{where}: its heads do not match its digest (the file was edited)"))
    if key is not None:
        if checkpoint.mac is None:
            problems.append(TrailProblem("", None, f"{where}: not signed, though a trail key is configured"))
        elif checkpoint.key_id != key.key_id:
            problems.append(TrailProblem("", None, f"{where}: signed with another key ({checkpoint.key_id})"))
        elif key.mac_problem(_CHECKPOINT_MAC_DOMAIN, checkpoint.signed_part(), checkpoint.mac) is not None:
            problems.append(TrailProblem("", None, f"{where}: its signature does not match (forged or edited)"))
    return problems


# --- verification -------------------------------------------------------------------------------------


ProgressCallback = Callable[[int], None]


def count_instances(
    session: Session, instance_ids: Iterable[str] | None = None, *, organisation: str | None = None
) -> int:
    """How many instances :func:`verify_trail` will check (for a progress bar)."""
    query = select(func.count()).select_from(PathwayInstance)
    if instance_ids is not None:
        query = query.where(PathwayInstance.id.in_(sorted(set(instance_ids))))
    if organisation is not None:
        query = query.where(PathwayInstance.organisation == organisation)
    return int(session.scalar(query) or 0)


IdRange = tuple[str | None, str | None]


def verify_trail(
    session: Session,
    instance_ids: Iterable[str] | None = None,
    checkpoint: Checkpoint | None = None,
    *,
    progress: ProgressCallback | None = None,
    batch: int = 2000,
    organisation: str | None = None,
    id_range: IdRange | None = None,
) -> list[TrailProblem]:
    """Check every instance's chain (or those named, or those of ``organisation``, or those in
    ``id_range``); return what is wrong (empty when intact).

    With a trail key in the session, every event's MAC is checked; the stored state of every
    instance is checked against the newest digest its events recorded; with a ``checkpoint``, every
    instance it lists must still be there with its checkpointed head in its chain. With
    ``organisation`` only its instances are read: an instance deleted with its row no longer says
    whose it was, so deletions and orphaned events are found by a verification of every trail.

    One ordered scan, in constant memory whatever the number of instances: the instances by id and
    their events by ``(instance_id, id)`` are read side by side, ``batch`` rows at a time (a
    server-side cursor on PostgreSQL), and merged; only the problems found are kept (and, with a
    checkpoint, the ids it lists that were not seen yet). ``progress`` is called with the number of
    instances checked so far after every ``batch`` of them, and once at the end.

    ``id_range`` ``(low, high)``: only the instances (and events) with ``low <= id < high`` (None: no
    bound), so that disjoint ranges can be verified by processes of their own
    (:mod:`engine.verifications`); the checkpoint's ids outside the range are not looked for, and the
    checkpoint's own digest and signature are left to the caller (:func:`checkpoint_problems`).
    """
    key = trail_key_of(session)
    if session.get_bind().dialect.name == "postgresql":
        # Event times come as the driver reads them, in the session's zone (see _TRAIL_EVENT_COLUMNS):
        # UTC for this transaction, so that they are hashed as they are, as they were written.
        session.execute(text("SET LOCAL TIME ZONE 'UTC'"))
    wanted = sorted(set(instance_ids)) if instance_ids is not None else None
    low, high = id_range or (None, None)
    # The stored bytes are decoded in the scan: one that cannot be read is a problem to report, not a failure.
    instances, events = _trail_scans(wanted, low, high, organisation)
    problems: list[TrailProblem] = []
    if checkpoint is not None and id_range is None:  # a share's caller checks the checkpoint itself
        problems.extend(checkpoint_problems(checkpoint, key))
    unseen = {i for i in checkpoint.heads if _in_range(i, low, high)} if checkpoint is not None else set()
    # Rows are taken a batch at a time (partitions): row by row, the result's machinery cost as much
    # as hashing the event.
    event_rows = _scan(session, events, batch, _TrailEvent._make)
    pending = next(event_rows, None)
    checked = 0
    for instance_id, head_seq, head_hash, state, seal in _scan(session, instances, batch, tuple):
        # Instance ids are UUIDs in canonical form, which sort alike in Python and in the database.
        while pending is not None and pending.instance_id < instance_id:
            pending = _orphans(pending, event_rows, problems)
        trail = []
        while pending is not None and pending.instance_id == instance_id:
            trail.append(pending)
            pending = next(event_rows, None)
        unseen.discard(instance_id)
        expected = checkpoint.heads.get(instance_id) if checkpoint is not None else None
        problems.extend(_verify_chain(instance_id, trail, head_seq, head_hash, key, expected))
        problems.extend(_verify_state(instance_id, trail, state, seal, key))
        checked += 1
        if progress is not None and checked % batch == 0:
            progress(checked)
    while pending is not None:
        pending = _orphans(pending, event_rows, problems)
    if progress is not None:
        progress(checked)
    if checkpoint is not None and organisation is None:  # a deleted instance no longer says whose it was
        problems.extend(_deleted(checkpoint, unseen, wanted))
    return problems


def _trail_scans(
    wanted: list[str] | None, low: str | None, high: str | None, organisation: str | None
) -> tuple[Any, Any]:
    """The two ordered scans of a verification: the instances by id, their events by (instance id, id)."""
    instances = select(
        PathwayInstance.id,
        PathwayInstance.event_seq,
        PathwayInstance.event_head,
        # CAST, not only typed: a value written as text (an edit by hand on SQLite) is
        # read as its bytes, so the edit is reported instead of failing the scan.
        sql_cast(PathwayInstance.state, LargeBinary),
        PathwayInstance.state_mac,
    ).order_by(PathwayInstance.id)
    events = select(*_TRAIL_EVENT_COLUMNS).order_by(_EVENTS.c.instance_id, _EVENTS.c.id)
    if wanted is not None:
        instances = instances.where(PathwayInstance.id.in_(wanted))
        events = events.where(_EVENTS.c.instance_id.in_(wanted))
    if organisation is not None:
        instances = instances.where(PathwayInstance.organisation == organisation)
        events = events.where(
            _EVENTS.c.instance_id.in_(select(PathwayInstance.id).where(PathwayInstance.organisation == organisation))
        )
    if low is not None:
        instances, events = instances.where(PathwayInstance.id >= low), events.where(_EVENTS.c.instance_id >= low)
    if high is not None:
        instances, events = instances.where(PathwayInstance.id < high), events.where(_EVENTS.c.instance_id < high)
    return instances, events


def _deleted(checkpoint: Checkpoint, unseen: set[str], wanted: list[str] | None) -> list[TrailProblem]:
    problems = []
    for instance_id in sorted(unseen):
        if wanted is None or instance_id in wanted:
            seq = checkpoint.heads[instance_id][0]
            message = f"deleted: in the checkpoint of {checkpoint.at} at event {seq}, not in the database"
            problems.append(TrailProblem(instance_id, None, message))
    return problems


def _in_range(instance_id: str, low: str | None, high: str | None) -> bool:
    return (low is None or instance_id >= low) and (high is None or instance_id < high)


class _TrailEvent(NamedTuple):
    """An event as verification reads it: the fields its hash covers, its hash and MAC."""

    instance_id: str
    seq: int
    type: str
    at: datetime
    actor: str
    pathway_version: str
    element: str | None
    task_id: str | None
    payload: str
    prev_hash: str
    hash: str
    state_digest: str | None
    mac: str | None


# The event time without UTCDateTime's conversion of every value (a Python call per event, a tenth of
# a verification's time): _verify_chain converts only a time not already at UTC's offset.
_TRAIL_EVENT_COLUMNS = tuple(
    type_coerce(_EVENTS.c.at, DateTime(timezone=True)).label("at") if name == "at" else _EVENTS.c[name]
    for name in _TrailEvent.__annotations__
)
_UTC_OFFSET = timedelta(0)


_cursor_numbers = itertools.count()


def scan_sql(dialect: Any, statement: Any) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters :func:`_scan` declares its PostgreSQL cursor for (``bench/scale.py`` EXPLAINs them)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return compiled.string, dict(compiled.params)


def trail_scans(id_range: IdRange) -> tuple[Any, Any]:
    """The two ordered scans a verification of every trail in ``id_range`` runs (instances, then events)."""
    low, high = id_range
    return _trail_scans(None, low, high, None)


def _scan(session: Session, statement: Any, batch: int, make: Callable[[Any], Any]) -> Iterator[Any]:
    """The statement's rows in order, ``batch`` at a time, each made by ``make``. On PostgreSQL a
    server-side cursor of the driver's own in binary: a state's bytes come as they are stored, not as
    twice as many hex digits, and no time is written out as text to be parsed back (a tenth of a
    verification's CPU, on both sides); elsewhere through SQLAlchemy."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield from _rows(session.execute(statement.execution_options(yield_per=batch)), make)
        return
    sql, params = scan_sql(connection.dialect, statement)
    driver = connection.connection.driver_connection
    cursor = driver.cursor(f"carepath_trail_{next(_cursor_numbers)}", binary=True)  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        while part := cursor.fetchmany(batch):
            yield from map(make, part)
    finally:
        cursor.close()


def _rows(result: Any, make: Callable[[Any], Any]) -> Iterator[Any]:
    """The result's rows as plain tuples, fetched a batch at a time: a SQLAlchemy row's attributes
    cost more to read than the event costs to hash."""
    for part in result.partitions():
        yield from map(make, part)


def _orphans(first: Any, rows: Iterator[Any], problems: list[TrailProblem]) -> Any:
    """Skip the events of an instance that is not in the database (its row deleted, its trail left);
    returns the next event of another instance."""
    problems.append(
        TrailProblem(
            first.instance_id, None, "events of an instance that is not in the database (the instance was deleted)"
        )
    )
    following = next(rows, None)
    while following is not None and following.instance_id == first.instance_id:
        following = next(rows, None)
    return following


def _verify_chain(
    instance_id: str,
    events: list[Any],
    head_seq: int,
    head_hash: str,
    key: TrailKey | None,
    expected: tuple[int, str] | None,
) -> list[TrailProblem]:
    problems = []
    prev_hash, expected_seq = GENESIS, 1
    sha256 = hashlib.sha256
    for event in events:
        if event.at.utcoffset() != _UTC_OFFSET:  # naive (SQLite) or in another zone: as UTCDateTime reads it
            at = event.at
            event = event._replace(at=at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC))
        if event.seq != expected_seq:
            problems.append(
                TrailProblem(instance_id, event.seq, f"out of order or missing events: expected event {expected_seq}")
            )
        if event.prev_hash != prev_hash:
            problems.append(TrailProblem(instance_id, event.seq, "does not follow the previous event (chain broken)"))
        if sha256(event_text(event).encode()).hexdigest() != event.hash:
            problems.append(TrailProblem(instance_id, event.seq, "content was changed after it was written"))
        # Equal to the code made again: authentic (no one times this comparison to learn a code).
        # Otherwise _verify_mac says what is wrong, comparing in constant time.
        if (
            key is not None
            and event.mac != key.event_mac(event.hash)
            and (wrong := _verify_mac(instance_id, event, key)) is not None
        ):
            problems.append(wrong)
        prev_hash, expected_seq = event.hash, event.seq + 1
    if events and (events[-1].seq != head_seq or events[-1].hash != head_hash) or (not events and head_seq):
        problems.append(
            TrailProblem(
                instance_id, None, f"trail ends before the instance's newest event {head_seq} (events deleted)"
            )
        )
    if expected is not None:
        seq, head = expected
        found = next((e for e in events if e.seq == seq), None)
        if found is None or head_seq < seq:
            problems.append(
                TrailProblem(
                    instance_id, None, f"truncated: the checkpoint saw event {seq}, the trail now ends at {head_seq}"
                )
            )
        elif found.hash != head:
            problems.append(TrailProblem(instance_id, seq, "rewritten: not the event the checkpoint saw"))
    return problems


def _verify_mac(instance_id: str, event: Any, key: TrailKey) -> TrailProblem | None:
    wrong = key.mac_problem(_EVENT_MAC_DOMAIN, event.hash, event.mac)
    if wrong is None:
        return None
    if event.mac is None:
        wrong += " (carepath audit sign-existing, if it predates the key)"
    return TrailProblem(instance_id, event.seq, wrong)


def _verify_state(
    instance_id: str, events: list[Any], stored: bytes, seal: str | None, key: TrailKey | None
) -> list[TrailProblem]:
    recorded = next((e for e in reversed(events) if e.state_digest is not None), None)
    if (
        recorded is not None
        and key is not None
        and seal is not None
        and seal.isascii()  # compare_digest refuses other text: such a seal was edited
        and hmac.compare_digest(seal, key.state_mac(instance_id, recorded.state_digest, stored))
    ):
        return []  # these bytes were sealed to this digest by the key's holder: no need to inflate them
    try:
        state = decode_state(stored)
    except UnreadableStateError as exc:
        seq = recorded.seq if recorded is not None else None
        return [TrailProblem(instance_id, seq, f"{exc} (edited or damaged after it was written)")]
    if recorded is None or recorded.state_digest == state_digest(state):
        return []
    return [
        TrailProblem(
            instance_id,
            recorded.seq,
            "the stored workflow state is not the one this event recorded (edited after it was written)",
        )
    ]


def authenticate_existing(session: Session, batch: int = 5000) -> int:
    """Add MACs to events written before a trail key was configured, in every chain that verifies
    otherwise; returns how many events were authenticated. The one change ever made to written events.
    The events are read ``batch`` at a time in id order and updated a batch per statement, so a national
    caseload's tens of millions of events never sit in memory at once.

    Raises:
        ValueError: the session has no trail key.
    """
    key = trail_key_of(session)
    if key is None:
        raise ValueError("no trail key configured (CAREPATH_TRAIL_KEY_FILE)")
    unkeyed = session.info.pop(TRAIL_KEY)
    try:
        broken = {p.instance_id for p in verify_trail(session)}
    finally:
        session.info[TRAIL_KEY] = unkeyed
    count, after = 0, 0
    while True:
        rows = session.execute(
            select(InstanceEvent.id, InstanceEvent.instance_id, InstanceEvent.hash)
            .where(InstanceEvent.mac.is_(None), InstanceEvent.id > after)
            .order_by(InstanceEvent.id)
            .limit(batch)
        ).all()
        signed = [
            {"id": event_id, "mac": key.event_mac(event_hash)}
            for event_id, instance_id, event_hash in rows
            if instance_id not in broken
        ]
        if signed:  # one UPDATE by primary key, executed for the batch
            session.execute(update(InstanceEvent), signed)
            count += len(signed)
        if len(rows) < batch:
            return count
        after = rows[-1][0]


def seal_existing_states(session: Session, batch: int = 500) -> int:
    """Seal the stored states written without a seal (before the trail key, or before seals existed:
    migration 0037) whose text still matches the digest their newest event records; returns how many.
    A state that does not match is left unsealed, for verification to report. Reads ``batch``
    instances at a time in id order (constant memory); each is sealed only if no step wrote it since
    it was read (its revision)."""
    key = trail_key_of(session)
    if key is None:
        raise ValueError("no trail key configured (CAREPATH_TRAIL_KEY_FILE)")
    newest = (
        select(InstanceEvent.state_digest)
        .where(InstanceEvent.instance_id == PathwayInstance.id, InstanceEvent.state_digest.is_not(None))
        .order_by(InstanceEvent.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    count, after = 0, ""
    while True:
        rows = session.execute(
            select(PathwayInstance.id, PathwayInstance.revision, sql_cast(PathwayInstance.state, LargeBinary), newest)
            .where(PathwayInstance.state_mac.is_(None), PathwayInstance.id > after)
            .order_by(PathwayInstance.id)
            .limit(batch)
        ).all()
        seals = []
        for instance_id, revision, stored, digest in rows:
            try:
                matches = digest is not None and state_digest(decode_state(stored)) == digest
            except UnreadableStateError:
                matches = False
            if matches:
                seal = key.state_mac(instance_id, digest, bytes(stored))
                seals.append({"sealed_id": instance_id, "read_revision": revision, "seal": seal})
        if seals:  # one statement for the batch, each row guarded by the revision read
            table = cast(Table, PathwayInstance.__table__)
            sealed = session.execute(
                update(table)
                .where(table.c.id == bindparam("sealed_id"), table.c.revision == bindparam("read_revision"))
                .values(state_mac=bindparam("seal")),
                seals,
            )
            count += max(getattr(sealed, "rowcount", 0), 0)
        if len(rows) < batch:
            return count
        after = rows[-1][0]
