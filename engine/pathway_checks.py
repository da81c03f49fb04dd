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

Instances started before the check existed (schema revision 0034) carry none until their diagnoses are read
again: :func:`read_diagnoses` does it in the background, a batch at each turn of a worker, turn after turn
until done (the task ``read_diagnoses`` of ``upgrade_tasks``, which migration 0036 leaves), or all at once from
the command line (``carepath pathways check-diagnoses``, which with ``--again`` also reads them after the
vocabulary changed).
It lists the instances that have not ended and carry no check, in id order, and reads each one's stored
state's JSON text (no workflow restored) for the diagnoses it holds; only an instance holding one that names
another site is then read as a step would (:meth:`PathwayService.ask_pathway_check`), which asks for the
check unless a clinician confirmed the pathway since the diagnosis was given. One reader at a time holds the
task's lease; a reader that dies leaves it to the next once the lease ends, from the last batch it finished
(a batch read twice asks nothing twice).

Owns: :func:`pathway_check` (what a diagnosis asks), :func:`pending_check` (the warning an instance
carries), :func:`confirmation_problem` (a confirmation's check), :func:`confirm` (recording one) and
:func:`read_diagnoses` (reading again the instances that carry none).

May import: ``rules`` (the diagnoses' vocabulary), ``instances`` (the view, the step service), ``db`` (the
upgrade task, the instances' rows) and the shared ``errors``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import LargeBinary, func, or_, select, type_coerce, update

from engine.db.models import PathwayInstance, UpgradeTask
from engine.db.session import read_only, unit_of_work
from engine.db.stored_state import UnreadableStateError, decode_state
from engine.errors import InvalidInputError, Problem, StaleVersionError
from engine.instances.view import NOT_ENDED, InstanceView
from engine.rules.diagnoses import DiagnosisSite, DiagnosisVocabulary, pathway_site

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = [
    "CONFIRM_FIELD",
    "READ_DIAGNOSES",
    "DiagnosesRead",
    "PathwayCheck",
    "confirm",
    "confirmation_problem",
    "diagnoses_unread",
    "pathway_check",
    "pending_check",
    "read_again",
    "read_diagnoses",
    "unread_count",
]

# The start request's field (and the web form's) that confirms the site the diagnosis names.
CONFIRM_FIELD = "confirm_other_site"
WARNING_CODE = "diagnosis-names-other-site"
# The upgrade task (engine.db.models.UpgradeTask) of reading the diagnoses of instances that carry no check.
READ_DIAGNOSES = "read_diagnoses"
# A reader's hold on the task: past it, another reader takes over (a batch takes well under a minute).
READ_LEASE = timedelta(minutes=5)


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


@dataclass(frozen=True)
class DiagnosesRead:
    """One turn of :func:`read_diagnoses`: the instances it read and the checks it asked for, and whether the
    task is done (``busy``: another reader holds it, and this turn read nothing)."""

    read: int
    asked: int
    done: bool
    busy: bool = False


def read_diagnoses(carepath: CarePath, limit: int = 1000) -> DiagnosesRead:
    """Read the diagnoses of the next ``limit`` instances of the task :data:`READ_DIAGNOSES` (the module's
    docstring), asking for each check they need, and move the task on past them.

    Raises: RuleFileError (the diagnoses' vocabulary is invalid: nothing is read, the task stays where it was)."""
    vocabulary = carepath.rules.catalogue().diagnoses
    lease = str(uuid.uuid4())
    now = carepath.clock.now()
    with unit_of_work(carepath.sessions) as session:
        task = session.get(UpgradeTask, READ_DIAGNOSES)
        if task is None or task.done_at is not None:
            return DiagnosesRead(0, 0, True)
        taken = session.execute(
            update(UpgradeTask)
            .where(
                UpgradeTask.name == READ_DIAGNOSES,
                UpgradeTask.done_at.is_(None),
                or_(UpgradeTask.lease_until.is_(None), UpgradeTask.lease_until < now),
            )
            .values(lease_id=lease, lease_until=now + READ_LEASE)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:  # another reader holds the lease
            return DiagnosesRead(0, 0, False, busy=True)
        after = task.after_id
    with read_only(carepath.sessions) as session:
        rows = session.execute(
            select(PathwayInstance.id, PathwayInstance.pathway_id, type_coerce(PathwayInstance.state, LargeBinary))
            .where(*_unread(after))
            .order_by(PathwayInstance.id)
            .limit(limit)
        ).all()
    read, asked, last = 0, 0, after
    done = len(rows) < limit
    for instance_id, pathway_id, stored in rows:
        if _names_another_site(vocabulary, pathway_id, stored):
            try:
                asked += carepath.instances.ask_pathway_check(instance_id) is not None
            except StaleVersionError:  # its own steps kept winning: the next turn starts from it
                done = False
                break
        read, last = read + 1, instance_id
    with unit_of_work(carepath.sessions) as session:
        session.execute(
            update(UpgradeTask)
            .where(UpgradeTask.name == READ_DIAGNOSES, UpgradeTask.lease_id == lease)
            .values(
                after_id=last,
                lease_id=None,
                lease_until=None,
                read_count=UpgradeTask.read_count + read,
                asked_count=UpgradeTask.asked_count + asked,
                done_at=carepath.clock.now() if done else None,
            )
            .execution_options(synchronize_session=False)
        )
    return DiagnosesRead(read, asked, done)


def unread_count(carepath: CarePath) -> int:
    """How many instances the task :data:`READ_DIAGNOSES` has still to read (0 once it is done)."""
    with read_only(carepath.sessions) as session:
        task = session.get(UpgradeTask, READ_DIAGNOSES)
        if task is None or task.done_at is not None:
            return 0
        return int(
            session.scalar(select(func.count()).select_from(PathwayInstance).where(*_unread(task.after_id))) or 0
        )


def diagnoses_unread(carepath: CarePath) -> bool:
    """Whether the task :data:`READ_DIAGNOSES` is still to be done: the instances waiting for a check may not
    all be known yet (a primary key's lookup: cheap enough for every list that shows them)."""
    with read_only(carepath.sessions) as session:
        task = session.get(UpgradeTask, READ_DIAGNOSES)
        return task is not None and task.done_at is None


def read_again(carepath: CarePath) -> None:
    """Start the task :data:`READ_DIAGNOSES` again from the first instance (after the diagnoses' vocabulary
    named more sites: the instances it now finds on another site's pathway get the check)."""
    with unit_of_work(carepath.sessions) as session:
        task = session.get(UpgradeTask, READ_DIAGNOSES)
        if task is None:
            session.add(UpgradeTask(name=READ_DIAGNOSES, read_count=0, asked_count=0))
        else:
            task.after_id, task.lease_id, task.lease_until, task.done_at = None, None, None, None
            task.read_count, task.asked_count = 0, 0


def _unread(after: str | None) -> list[Any]:
    """The conditions of the instances still to read after the id ``after``."""
    where = [PathwayInstance.status.in_(NOT_ENDED), PathwayInstance.pathway_check.is_(None)]
    return where if after is None else [PathwayInstance.id > after, *where]


def _names_another_site(vocabulary: DiagnosisVocabulary, pathway_id: str, stored: bytes | None) -> bool:
    """Whether a stored state holds, anywhere in its data, a diagnosis naming another site than the pathway's:
    a quick reading of its JSON text (no workflow restored, not even the JSON parsed: a fifth of the time)
    that finds every instance whose current diagnosis does, and some whose earlier one did; the step then reads
    the current one. A state that cannot be read names nothing here (a step on it holds the instance in error,
    as any step would)."""
    if not stored:
        return False
    try:
        text = decode_state(stored)
    except UnreadableStateError:
        return False
    return any(vocabulary.other_site(pathway_id, value) is not None for value in _diagnoses(text))


# A key "diagnosis" with a text value, in JSON text. A key is written as it is (no escapes in "diagnosis"), and
# a quote inside a JSON string is always escaped, so every such key matches (and at worst a key ending in it).
_DIAGNOSIS_KEY = re.compile(r'"diagnosis"\s*:\s*("(?:[^"\\]|\\.)*")')


def _diagnoses(text: str) -> Iterator[str]:
    """Every text held under the key ``diagnosis`` in a JSON text, at any depth."""
    for literal in _DIAGNOSIS_KEY.findall(text):
        try:
            yield json.loads(literal)
        except ValueError:  # not a JSON string after all
            continue


def _site(sites: dict[str, DiagnosisSite], code: str) -> DiagnosisSite:
    """A site of the vocabulary; one it no longer has (changed since the instance's diagnosis was read) by its
    code alone, still shown."""
    return sites.get(code) or DiagnosisSite(code, code, code, (), (), ())


def _lower(name: str) -> str:
    return name[:1].lower() + name[1:]
