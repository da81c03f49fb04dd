"""Deploying pathway versions: from the pathways folder or an upload, stored once per version.

Every deploy passes the one gate, :mod:`engine.pathways.validation`: the pathways folder is checked
as ``carepath validate`` checks it, an upload as ``POST /v1/pathways/validate`` checks it. Any error
refuses the whole deploy (nothing is stored) with every problem located ``file:line: element:
message``; warnings are returned with the versions.

Four eyes (:mod:`engine.four_eyes`): a deployed version is *pending*; new instances start on the
pathway's *active* version, the one activated last, until a second author activates the new one
(:meth:`PathwayCatalog.activate`). Two deploys are active at once: a pathway's first version loaded
from the pathways folder (the system's bootstrap: a fresh server has something to run), and every
deploy when four eyes is off (``CAREPATH_FOUR_EYES=off``, a single developer). Pending versions can
be validated, tested (``carepath pathways test``) and looked at; only starts wait for activation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.db.models import PathwayInstance, PathwayVersion
from engine.db.session import read_only, unit_of_work
from engine.errors import DiagramError, InvalidInputError, NotFoundError, Problem, VersionStateError
from engine.four_eyes import content_digest, record_deployment, require_second_person
from engine.pathways.bundle import Bundle, ChainedFiles, MemoryFiles
from engine.pathways.diagrams import parse_diagram
from engine.pathways.sources import (
    BundleSurvey,
    PathwayLibrary,
    PathwaySource,
    compile_source,
    files_from_json,
    files_to_json,
    source_from_diagrams,
    survey_bundle,
)
from engine.pathways.validation import (
    KNOWN_OPERATORS,
    errors_in,
    library_diagrams,
    upload_name_problems,
    validate_paths,
    validate_upload,
)
from engine.spiff import serializer

__all__ = ["Deployment", "PathwayCatalog", "VersionInfo"]


@dataclass(frozen=True)
class VersionInfo:
    pathway_id: str
    version: str
    title: str
    main_file: str
    deployed_at: str
    deployed_by: str
    latest: bool  # the newest deployed (maybe still pending)
    active: bool = False  # the version new instances start on
    activated_at: str | None = None  # None: pending (never activated)
    activated_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Deployment(list[VersionInfo]):
    """What a deploy stored or found, one :class:`VersionInfo` per pathway (a list, as it always
    was), the warnings the gate gave (``warnings``: problems that did not stop it) and, for a
    bundle, what it contained and what came from the pathways folder (``bundle``)."""

    def __init__(
        self, versions: Iterable[VersionInfo] = (), warnings: Iterable[Problem] = (), bundle: BundleSurvey | None = None
    ) -> None:
        super().__init__(versions)
        self.warnings = list(warnings)
        self.bundle = bundle


def _no_rule_sets() -> Collection[str] | None:
    return None


def _builtin_operators() -> Collection[str]:
    return KNOWN_OPERATORS


class PathwayCatalog:
    """Which pathway versions exist, and deploying new ones (through the gate, module docstring).

    ``known_rule_sets`` and ``known_operators`` say, at each deploy, which rule set names and service
    operators the server has (as ``carepath validate`` is told them); by default rule set names are
    not checked and only the built-in operators are known.
    """

    def __init__(
        self,
        library: PathwayLibrary,
        session_factory: sessionmaker[Session],
        clock: Clock,
        *,
        known_rule_sets: Callable[[], Collection[str] | None] = _no_rule_sets,
        known_operators: Callable[[], Collection[str]] = _builtin_operators,
        on_deploy: Callable[[], None] = lambda: None,
        four_eyes: bool = True,
    ) -> None:
        self.library = library
        self.four_eyes = four_eyes  # False: every deploy is active at once (a single developer)
        self.on_deploy = on_deploy  # told after each deploy committed (the start-version cache is cleared)
        self.sessions = session_factory
        self.clock = clock
        self.known_rule_sets = known_rule_sets
        self.known_operators = known_operators

    def sync_library(self, actor: str = "system") -> Deployment:
        """Deploy the current version of every pathway in the folder (already-known versions are kept).

        The folder is checked as ``carepath validate`` checks it first; a folder without diagrams
        deploys nothing. A pathway with no active version yet gets its folder version active (the
        bootstrap of a fresh server); a newer folder version of an active pathway is pending.

        Raises:
            DiagramError: listing every problem (warnings too) when any diagram in the folder has an
                error (nothing is deployed then).
        """
        if next(self.library.files.names("*.bpmn"), None) is None:
            return Deployment()
        problems = validate_paths(
            [self.library.root],
            pathways_root=self.library.root,
            known_rule_sets=self.known_rule_sets(),
            known_operators=self.known_operators(),
        )
        _refuse_errors(problems, f"the pathways folder {self.library.root}")
        versions = self._deploy([self.library.source(pid) for pid in self.library.pathway_ids()], actor, bootstrap=True)
        return Deployment(versions, problems)

    def survey(self, files: Mapping[str, bytes], ignored: Collection[str] = ()) -> BundleSurvey:
        """What a bundle holds, and what its diagrams name that it lacks (from the pathways folder or
        missing), by name. Unreadable diagrams are skipped (the gate reports them)."""
        bundle = ChainedFiles(MemoryFiles(files), self.library.files)
        diagrams = []
        for name, content in files.items():
            if name.endswith(".bpmn"):
                try:
                    diagrams.append(parse_diagram(content, name, bundle))
                except DiagramError:
                    continue
        shared = [d for d in library_diagrams(self.library.files) if d.name not in files]
        return survey_bundle(diagrams, list(files), shared, ignored)

    def deploy_bundle(self, bundle: Bundle, actor: str) -> Deployment:
        """Deploy a bundle read from a folder or a zip archive (:mod:`engine.pathways.bundle`), as
        :meth:`deploy_upload` deploys its files; the deployment says what the bundle held.

        Raises: as :meth:`deploy_upload`.
        """
        deployment = self.deploy_upload(bundle.files, actor)
        if deployment.bundle is not None:
            deployment.bundle = dataclasses.replace(deployment.bundle, ignored=sorted(bundle.ignored))
        return deployment

    def deploy_upload(self, files: Mapping[str, bytes], actor: str) -> Deployment:
        """Deploy the pathways in uploaded files (``*.bpmn`` diagrams, and the ``*.json`` forms and
        ``*.dmn`` decision tables they name); calls may reach the library's diagrams. The upload is
        checked as ``POST /v1/pathways/validate`` checks it first.

        Raises:
            InvalidInputError: no files, or file names that are not plain ``*.bpmn`` / ``*.json`` /
                ``*.dmn`` names.
            DiagramError: listing every problem (warnings too) when any diagram has an error, or
                naming the upload when it holds no pathway file (only shared sub-pathways).
        """
        if not files:
            raise InvalidInputError(
                "no files uploaded", [Problem("at least one .bpmn file is required", field="/files")]
            )
        bad = upload_name_problems(files)
        if bad:
            raise InvalidInputError(
                "the upload's file names cannot be used", [dataclasses.replace(p, field=f"/{p.file}") for p in bad]
            )
        problems = validate_upload(
            files,
            pathways_root=self.library.root,
            known_rule_sets=self.known_rule_sets(),
            known_operators=self.known_operators(),
        )
        _refuse_errors(problems, "the upload")
        # Files the diagrams name resolve inside the upload, then the pathways folder: nowhere else.
        bundle = ChainedFiles(MemoryFiles(files), self.library.files)
        uploaded = [parse_diagram(content, name, bundle) for name, content in files.items() if name.endswith(".bpmn")]
        shared = [d for d in library_diagrams(self.library.files) if d.name not in files]
        ids = [pid for d in uploaded if "/" not in d.name for pid in d.executable_process_ids]
        if not ids:
            raise DiagramError(
                "no pathway in the upload",
                [
                    Problem(
                        "no pathway file in the upload: a pathway is a .bpmn file at the top level (not in a folder) "
                        "with an executable process",
                        file=next(iter(files)),
                        code="no-executable-process",
                    )
                ],
            )
        extra = {n: c for n, c in files.items() if n.endswith((".json", ".dmn"))}
        sources = []
        for pathway_id in ids:
            source = source_from_diagrams(pathway_id, uploaded + shared)
            sources.append(PathwaySource(source.pathway_id, source.main_file, {**source.files, **extra}))
        return Deployment(self._deploy(sources, actor), problems, self.survey(files))

    def _deploy(self, sources: list[PathwaySource], actor: str, *, bootstrap: bool = False) -> list[VersionInfo]:
        """Store each source's version unless known; all or nothing (one refused source deploys none).

        A new version is active at once when four eyes is off, or on ``bootstrap`` when its pathway has
        no active version; otherwise it is pending."""
        with unit_of_work(self.sessions) as session:
            rows = []
            for source in sources:
                existing = session.scalars(
                    select(PathwayVersion).where(
                        PathwayVersion.pathway_id == source.pathway_id, PathwayVersion.version == source.version
                    )
                ).first()
                if existing is None:
                    compiled = compile_source(source)
                    existing = PathwayVersion(
                        pathway_id=source.pathway_id,
                        version=source.version,
                        title=source.title,
                        main_file=source.main_file,
                        files=files_to_json(source.files),
                        spec=serializer.serialize_specs(compiled.spec, compiled.subprocess_specs),
                        deployed_at=self.clock.now(),
                        deployed_by=actor,
                        start_schema=source.start_schema,
                    )
                    if not self.four_eyes or (bootstrap and self._active(session, source.pathway_id) is None):
                        existing.activated_at, existing.activated_by = existing.deployed_at, actor
                    session.add(existing)
                    session.flush()
                    self._record(session, existing)
                rows.append(existing)
            infos = [self._info(session, row) for row in rows]
        self.on_deploy()
        return infos

    def activate(self, pathway_id: str, version: str, actor: str) -> VersionInfo:
        """Make a pending version the one new instances start on; ``actor`` must be a second person
        (:func:`engine.four_eyes.require_second_person`) unless four eyes is off.

        Raises:
            NotFoundError: no single version of the pathway starts with ``version``.
            VersionStateError: the version was already activated.
            FourEyesError: ``actor`` deployed it (as the same person), or names no person.
        """
        if len(version) < 4:  # a shorter prefix names too much to approve
            raise NotFoundError(f"no single version {version!r} of pathway {pathway_id!r}: give at least 4 characters")
        with unit_of_work(self.sessions) as session:
            row = self._version(session, pathway_id, version)
            if row.activated_at is not None:
                raise VersionStateError(
                    f"version {row.version[:12]} of pathway {pathway_id!r} was activated at "
                    f"{row.activated_at.isoformat()} by {row.activated_by}"
                )
            if self.four_eyes:
                require_second_person(row.deployed_by, actor, f"activating version {row.version[:12]} of {pathway_id}")
            # Guarded: of two authors activating at once, one does; the other is told who did.
            now = self.clock.now()
            moved = session.execute(
                update(PathwayVersion)
                .where(PathwayVersion.id == row.id, PathwayVersion.activated_at.is_(None))
                .values(activated_at=now, activated_by=actor)
                .execution_options(synchronize_session=False)
            )
            if getattr(moved, "rowcount", 0) != 1:
                raise VersionStateError(f"version {row.version[:12]} of pathway {pathway_id!r} was activated just now")
            record_deployment(
                session, "activated", at=now, actor=actor, kind="pathway", subject=pathway_id, version=row.version
            )
            session.refresh(row)
            info = self._info(session, row)
        self.on_deploy()  # starts move to it at once in this process (others within seconds)
        return info

    @staticmethod
    def _record(session: Session, row: PathwayVersion) -> None:
        """A new version in the deployment trail (engine.four_eyes), with its activation when active at once."""
        record_deployment(
            session,
            "deployed",
            at=row.deployed_at,
            actor=row.deployed_by,
            kind="pathway",
            subject=row.pathway_id,
            version=row.version,
            content=content_digest(row.files, row.spec, row.start_schema),
        )
        if row.activated_at is not None and row.activated_by is not None:
            record_deployment(
                session,
                "activated",
                at=row.activated_at,
                actor=row.activated_by,
                kind="pathway",
                subject=row.pathway_id,
                version=row.version,
            )

    def pathways(self) -> list[VersionInfo]:
        """The current version of every deployed pathway: its active one, or its newest when none
        is active yet."""
        with read_only(self.sessions) as session:
            ids = session.scalars(select(PathwayVersion.pathway_id).distinct().order_by(PathwayVersion.pathway_id))
            return [self._info(session, self._current(session, pid)) for pid in list(ids)]

    def titles(self) -> dict[str, str]:
        """Every deployed pathway's title, from its current version (as :meth:`current` chooses it), in
        one query of the small columns: the pages name a patient's pathway by its title."""
        with read_only(self.sessions) as session:
            rows = session.execute(
                select(
                    PathwayVersion.pathway_id,
                    PathwayVersion.title,
                    PathwayVersion.activated_at,
                    PathwayVersion.deployed_at,
                    PathwayVersion.id,
                )
            ).all()
        chosen: dict[str, tuple[tuple[bool, datetime, int], str]] = {}
        for pathway_id, title, activated_at, deployed_at, row_id in rows:
            # The one activated last, else (none active) the newest: the largest key.
            key = (activated_at is not None, activated_at or deployed_at, row_id)
            if pathway_id not in chosen or key > chosen[pathway_id][0]:
                chosen[pathway_id] = (key, title)
        return {pathway_id: title for pathway_id, (_key, title) in chosen.items()}

    def current(self, pathway_id: str) -> VersionInfo:
        """The version new instances start on, or the newest when none is active yet.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            return self._info(session, self._current(session, pathway_id))

    def version(self, pathway_id: str, version: str) -> VersionInfo:
        """The one version of the pathway whose id starts with ``version`` (a prefix, as the pages show it).

        Raises: NotFoundError (none, or more than one, starts with it).
        """
        with read_only(self.sessions) as session:
            return self._info(session, self._version(session, pathway_id, version))

    def versions(self, pathway_id: str) -> list[VersionInfo]:
        """Raises: NotFoundError."""
        with read_only(self.sessions) as session:
            rows = session.scalars(
                select(PathwayVersion)
                .where(PathwayVersion.pathway_id == pathway_id)
                .order_by(PathwayVersion.deployed_at.desc(), PathwayVersion.id.desc())
            ).all()
            if not rows:
                raise NotFoundError(f"no pathway {pathway_id!r}")
            return [self._info(session, row) for row in rows]

    def diagram(self, pathway_id: str, version: str | None = None, file_name: str | None = None) -> bytes:
        """The diagram XML of a version (the current one unless named; the main file unless another is named).

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            row = self._current(session, pathway_id) if version is None else self._version(session, pathway_id, version)
            files = files_from_json(row.files)
            name = file_name or row.main_file
            if name not in files:
                raise NotFoundError(f"no file {name!r} in pathway {pathway_id} version {row.version[:12]}")
            return files[name]

    def start_schema(self, pathway_id: str, version: str | None = None) -> dict[str, Any] | None:
        """The start data schema of a version (the current one unless one is named); None when it has none.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            row = self._current(session, pathway_id) if version is None else self._version(session, pathway_id, version)
            return json.loads(row.start_schema) if row.start_schema is not None else None

    def start_schemas(self) -> dict[str, dict[str, Any]]:
        """The start data schema of the current version of every deployed pathway that declares one."""
        return {
            info.pathway_id: schema
            for info in self.pathways()
            if (schema := self.start_schema(info.pathway_id)) is not None
        }

    def instance_count(self, pathway_id: str) -> int:
        with read_only(self.sessions) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(PathwayInstance).where(PathwayInstance.pathway_id == pathway_id)
                )
                or 0
            )

    def _latest(self, session: Session, pathway_id: str) -> PathwayVersion:
        row = session.scalars(
            select(PathwayVersion)
            .where(PathwayVersion.pathway_id == pathway_id)
            .order_by(PathwayVersion.deployed_at.desc(), PathwayVersion.id.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFoundError(f"no pathway {pathway_id!r}")
        return row

    def _active(self, session: Session, pathway_id: str) -> PathwayVersion | None:
        """The version new instances start on: the one activated last (None: none is active)."""
        return session.scalars(
            select(PathwayVersion)
            .where(PathwayVersion.pathway_id == pathway_id, PathwayVersion.activated_at.is_not(None))
            .order_by(PathwayVersion.activated_at.desc(), PathwayVersion.id.desc())
            .limit(1)
        ).first()

    def _current(self, session: Session, pathway_id: str) -> PathwayVersion:
        """The active version, or the newest when none is active. Raises: NotFoundError."""
        return self._active(session, pathway_id) or self._latest(session, pathway_id)

    def _version(self, session: Session, pathway_id: str, version: str) -> PathwayVersion:
        rows = session.scalars(
            select(PathwayVersion).where(
                # autoescape: "%" and "_" in the prefix are themselves, not LIKE's wildcards
                PathwayVersion.pathway_id == pathway_id,
                PathwayVersion.version.startswith(version, autoescape=True),
            )
        ).all()
        if len(rows) != 1:
            raise NotFoundError(f"no single version {version!r} of pathway {pathway_id!r}")
        return rows[0]

    def _info(self, session: Session, row: PathwayVersion) -> VersionInfo:
        latest = self._latest(session, row.pathway_id)
        active = self._active(session, row.pathway_id)
        return VersionInfo(
            row.pathway_id,
            row.version,
            row.title,
            row.main_file,
            row.deployed_at.isoformat(),
            row.deployed_by,
            latest.id == row.id,
            active is not None and active.id == row.id,
            None if row.activated_at is None else row.activated_at.isoformat(),
            row.activated_by,
        )


def _refuse_errors(problems: list[Problem], what: str) -> None:
    """Raises: DiagramError with every problem (warnings too) when any of them is an error."""
    errors = errors_in(problems)
    if errors:
        raise DiagramError(f"{what} has {len(errors)} error(s)", problems)
