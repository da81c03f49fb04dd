"""Four eyes for rule sets: which version of each rule set evaluations use.

Rule sets are written as files in the rules folder (``CAREPATH_RULES_DIR``), and the registry
(:mod:`engine.rules.registry`) picks up a changed file within a second. For a production service
that is one person's edit going live unseen, so with four eyes on (``CAREPATH_FOUR_EYES``, the
default) evaluations in pathways use a rule set's *active* version, kept in the database:

* :meth:`RuleSetActivations.sync` records the folder's current text of every rule set (a server
  does it at start, ``carepath rules deploy`` on demand). A rule set's first version is active (the
  bootstrap of a fresh server); a changed text is a *pending* version.
* :meth:`RuleSetActivations.activate`: a second person (:mod:`engine.four_eyes`), never the one who
  deployed it, makes a pending version active; evaluations use it from then on, in every process.
* :func:`active_ruleset` is what an evaluation in a step uses: the active version, compiled from the
  stored text when this process has not loaded it (the folder may already hold a newer one).

``carepath rules test`` and the scenario runner keep reading the folder's text: authors test a
version before it is activated. With four eyes off, evaluations use the folder's current text, as
they always did.

The concern and intervention catalogue (``rules/catalogues``: which concerns exist, what each
intervention is and which service it goes to) changes what an evaluation proposes as much as a rule
does. So a version is a rule text *with* its catalogue: its ``version`` is a hash of both
(:func:`release_version`), both texts are stored with it, and evaluations use them. A changed
catalogue is a new, pending version of every rule set, activated by a second author like a changed
rule. Versions recorded before catalogues were (no ``catalogue_version``) keep using the folder's
catalogue until a newer version is activated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.db.models import RuleSetActivation
from engine.db.session import read_only, unit_of_work
from engine.errors import NotFoundError, VersionStateError
from engine.four_eyes import content_digest, record_deployment, require_second_person
from engine.rules.catalogue import WARNING_SIGNS_FILE
from engine.rules.loader import file_version
from engine.rules.registry import LoadedRuleset, RuleSetRegistry
from engine.rules.warning_signs import WarningSignCatalogue, load_warning_signs, warning_signs_of

__all__ = ["RuleSetActivations", "RuleSetVersionInfo", "active_ruleset", "release_version", "warning_signs_in_use"]


@dataclass(frozen=True)
class RuleSetVersionInfo:
    """A rule-set version as the database knows it: who deployed it, and who activated it when."""

    name: str
    version: str
    deployed_at: str
    deployed_by: str
    active: bool
    activated_at: str | None
    activated_by: str | None
    rules_version: str = ""  # the rule text's own version (what evaluations record as ruleset_version)
    catalogue_version: str | None = None  # None: recorded before catalogues were (the folder's is used)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def release_version(rules_version: str, catalogue_version: str) -> str:
    """A rule-set version as four eyes activates it: the rule text's version with its catalogue's."""
    return hashlib.sha256(f"carepath-rule-set/1\n{rules_version}\n{catalogue_version}".encode()).hexdigest()


def _active_row(session: Session, name: str) -> RuleSetActivation | None:
    return session.scalars(
        select(RuleSetActivation)
        .where(RuleSetActivation.name == name, RuleSetActivation.activated_at.is_not(None))
        .order_by(RuleSetActivation.activated_at.desc(), RuleSetActivation.id.desc())
        .limit(1)
    ).first()


def active_ruleset(session: Session, registry: RuleSetRegistry, name: str) -> LoadedRuleset:
    """The version of rule set ``name`` evaluations use (four eyes on), read in the caller's transaction.

    Raises:
        NotFoundError: the rule set has no active version.
        RuleFileError: the stored text no longer loads against the folder's catalogue.
    """
    row = _active_row(session, name)
    if row is None:
        raise NotFoundError(
            f"rule set '{name}' has no active version: a second author activates a deployed "
            "one (carepath rules activate)"
        )
    if row.catalogue_version is not None and row.catalogue_source is not None:
        return registry.pinned(name, row.version, row.source, row.catalogue_version, json.loads(row.catalogue_source))
    if row.version in registry.versions(name):  # recorded before catalogues were: the folder's catalogue
        return registry.by_version(name, row.version)
    return registry.load_text(row.source, f"{name}.yaml")


def warning_signs_in_use(session: Session, registry: RuleSetRegistry, *, active_only: bool) -> WarningSignCatalogue:
    """The warning signs a patient reports and their triage is timed by (read in the caller's transaction).

    Without four eyes (``active_only`` false), the folder's. With it, those stored with the rule-set version
    a second author activated most recently: a changed warning signs file is part of a new catalogue, so of
    pending rule-set versions, and a sign's urgency or escalation bound changes only once a second author
    activates one (docs/four-eyes.md). A deployment whose activated versions were all recorded before the
    catalogue held warning signs uses the folder's, as it did.

    Raises:
        RuleFileError: the warning signs cannot be read or are invalid.
    """
    if active_only:
        stored = session.scalars(
            select(RuleSetActivation.catalogue_source)
            .where(RuleSetActivation.activated_at.is_not(None), RuleSetActivation.catalogue_source.is_not(None))
            .order_by(RuleSetActivation.activated_at.desc(), RuleSetActivation.id.desc())
            .limit(1)
        ).first()
        text = json.loads(stored).get(WARNING_SIGNS_FILE) if stored else None
        if isinstance(text, str):
            return warning_signs_of(text, f"catalogues/{WARNING_SIGNS_FILE} (activated)")
    return load_warning_signs(registry.catalogue_dir / WARNING_SIGNS_FILE)


class RuleSetActivations:
    """Rule-set versions in the database: recorded from the folder, activated by a second person."""

    def __init__(
        self, registry: RuleSetRegistry, sessions: sessionmaker[Session], clock: Clock, *, four_eyes: bool = True
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.clock = clock
        self.four_eyes = four_eyes

    def sync(self, actor: str = "system") -> list[RuleSetVersionInfo]:
        """Record the folder's current version of every rule set, with the folder's catalogue (known
        versions are kept): active when the rule set has none active yet, or when four eyes is off;
        pending otherwise.

        Raises:
            RuleFileError: a rule file or the catalogue is invalid (nothing is recorded).
        """
        loaded = [self.registry.current(name) for name in self.registry.names()]
        with unit_of_work(self.sessions) as session:
            rows = []
            for ruleset in loaded:
                release = release_version(ruleset.version, ruleset.catalogue.version)
                row = session.scalars(
                    select(RuleSetActivation).where(
                        RuleSetActivation.name == ruleset.name, RuleSetActivation.version == release
                    )
                ).first()
                if row is None:
                    now = self.clock.now()
                    row = RuleSetActivation(
                        name=ruleset.name,
                        version=release,
                        source=ruleset.compiled.rule_file.source,
                        deployed_at=now,
                        deployed_by=actor,
                        catalogue_version=ruleset.catalogue.version,
                        catalogue_source=json.dumps(ruleset.catalogue.sources, sort_keys=True, ensure_ascii=False),
                    )
                    if not self.four_eyes or _active_row(session, ruleset.name) is None:
                        row.activated_at, row.activated_by = now, actor
                    session.add(row)
                    session.flush()
                    record_deployment(
                        session,
                        "deployed",
                        at=now,
                        actor=actor,
                        kind="rule_set",
                        subject=row.name,
                        version=row.version,
                        content=content_digest(row.source, row.catalogue_source),
                    )
                    if row.activated_at is not None:
                        record_deployment(
                            session,
                            "activated",
                            at=now,
                            actor=actor,
                            kind="rule_set",
                            subject=row.name,
                            version=row.version,
                        )
                rows.append(row)
            return [self._info(session, row) for row in rows]

    def activate(self, name: str, version: str, actor: str) -> RuleSetVersionInfo:
        """Make a pending version of rule set ``name`` the one evaluations use.

        Raises:
            NotFoundError: no single recorded version of ``name`` starts with ``version``.
            VersionStateError: it was activated already.
            FourEyesError: ``actor`` deployed it (the same person), or names no person (four eyes on).
        """
        with unit_of_work(self.sessions) as session:
            rows = session.scalars(
                select(RuleSetActivation).where(
                    RuleSetActivation.name == name, RuleSetActivation.version.startswith(version[:64], autoescape=True)
                )
            ).all()
            if len(version) < 4 or len(rows) != 1:
                raise NotFoundError(f"no single version {version[:64]!r} of rule set {name!r}")
            row = rows[0]
            if row.activated_at is not None:
                raise VersionStateError(
                    f"version {row.version[:12]} of rule set {name!r} was activated at "
                    f"{row.activated_at.isoformat()} by {row.activated_by}"
                )
            if self.four_eyes:
                require_second_person(
                    row.deployed_by, actor, f"activating version {row.version[:12]} of rule set {name}"
                )
            # Guarded: of two authors activating at once, one does; the other is told.
            now = self.clock.now()
            moved = session.execute(
                update(RuleSetActivation)
                .where(RuleSetActivation.id == row.id, RuleSetActivation.activated_at.is_(None))
                .values(activated_at=now, activated_by=actor)
                .execution_options(synchronize_session=False)
            )
            if getattr(moved, "rowcount", 0) != 1:
                raise VersionStateError(f"version {row.version[:12]} of rule set {name!r} was activated just now")
            record_deployment(
                session, "activated", at=now, actor=actor, kind="rule_set", subject=name, version=row.version
            )
            session.refresh(row)
            return self._info(session, row)

    def versions(self, name: str) -> list[RuleSetVersionInfo]:
        """The recorded versions of rule set ``name``, newest first. Raises: NotFoundError."""
        with read_only(self.sessions) as session:
            rows = session.scalars(
                select(RuleSetActivation)
                .where(RuleSetActivation.name == name)
                .order_by(RuleSetActivation.deployed_at.desc(), RuleSetActivation.id.desc())
            ).all()
            if not rows:
                raise NotFoundError(f"no recorded version of rule set {name!r}")
            return [self._info(session, row) for row in rows]

    def _info(self, session: Session, row: RuleSetActivation) -> RuleSetVersionInfo:
        active = _active_row(session, row.name)
        rules_version = file_version(row.source.encode("utf-8"))
        return RuleSetVersionInfo(
            row.name,
            row.version,
            row.deployed_at.isoformat(),
            row.deployed_by,
            active is not None and active.id == row.id,
            None if row.activated_at is None else row.activated_at.isoformat(),
            row.activated_by,
            rules_version,
            row.catalogue_version,
        )
