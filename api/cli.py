"""The ``carepath`` command line: serve, database, validation, audit, tokens, rules, reports.

Settings come from the environment (``CAREPATH_DATABASE_URL``, ``CAREPATH_PATHWAYS_DIR``,
``CAREPATH_RULES_DIR``, ``CAREPATH_ALLOW_EMPTY_LIBRARY``); SQLite in ``$XDG_DATA_HOME/carepath/``
(``~/.local/share/carepath/``, whatever folder a command runs in) and the bundled pathways and rules
are the defaults. Every command that opens the database names it on stderr first.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.settings import MAX_VERIFY_JOBS, Settings

from . import __version__
from .cli_rules import say_database


def _settings() -> Settings:
    return Settings.from_env()


def _carepath(ctx: click.Context, upgrade: bool = True) -> Any:
    from engine import CarePath
    from engine.sandbox import SandboxRefusedError

    obj = ctx.ensure_object(dict)
    if "carepath" not in obj:
        settings = obj.get("settings") or _settings()
        say_database(settings)
        try:
            obj["carepath"] = CarePath(settings, upgrade=upgrade)
        except SandboxRefusedError as exc:  # CAREPATH_SANDBOX on a database of real patients
            raise click.ClickException(str(exc)) from exc
        ctx.call_on_close(obj["carepath"].close)
    return obj["carepath"]


carepath_of = _carepath  # for the command modules beside this one (cli_access)


@click.group()
@click.version_option(__version__, prog_name="carepath")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CarePath: care pathway workflow engine for cancer care."""
    obj = ctx.ensure_object(dict)
    obj["settings"] = _settings()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the HTTP API (development server; see the README for gunicorn in production).

    Upgrades the database schema and deploys the bundled pathways first; refuses to start (exit 1)
    when the pathways or rules folder is missing or empty, unless CAREPATH_ALLOW_EMPTY_LIBRARY=1, when
    the service directory is invalid, and with CAREPATH_ENV=production on the example service directory,
    unless CAREPATH_ALLOW_EXAMPLE_DIRECTORY=1.
    """
    from api import create_app
    from engine.directory import ExampleDirectoryError
    from engine.errors import DiagramError, RuleFileError
    from engine.library import EmptyLibraryError
    from engine.pathways.validation import format_problems
    from engine.sandbox import SandboxRefusedError

    try:
        app = create_app()
    except (EmptyLibraryError, ExampleDirectoryError, SandboxRefusedError) as exc:
        raise click.ClickException(str(exc)) from exc
    except RuleFileError as exc:  # the service directory, every problem with its line
        raise click.ClickException(f"refusing to start: {exc}") from exc
    except DiagramError as exc:  # the pathways folder did not pass the gate: say where, as deploy does
        click.echo(format_problems(exc.problems), err=True)
        raise click.ClickException(f"refusing to start, nothing deployed: {exc.message}") from exc
    click.echo(f"CarePath API on http://{host}:{port}/v1/ (database: {_redacted(app.config['DATABASE_URL'])})")
    _first_user(app, host, port)
    app.run(host=host, port=port, threaded=True)


def _first_user(app: Any, host: str, port: int) -> None:
    """On a database without any API token, a clinician token for a first user and its sign-in link, once."""
    from api.web.first_user import FIRST_ROLE, first_user_link

    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    link = first_user_link(app.extensions["carepath"], f"http://{shown}:{port}")
    if link is not None:
        click.echo(f"No user yet: a {FIRST_ROLE} token was made for you (shown only now). To sign in to the web app,")
        click.echo(f"open {link}")


def _redacted(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply schema migrations (Alembic)."""
    from engine.db.session import upgrade_schema

    settings: Settings = ctx.obj["settings"]
    say_database(settings)
    upgrade_schema(settings.database_url, revision)
    click.echo(f"database at {revision}")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check diagrams (*.bpmn) and rule files (*.yaml); print file:line: element: message.

    With no PATH, checks the configured pathways and rules folders. Exits 1 when anything is wrong.
    """
    from engine.errors import Problem
    from engine.pathways.validation import errors_in, format_problems, rule_set_names, validate_paths

    from .cli_rules import validate_rule_paths

    settings: Settings = ctx.obj["settings"]
    targets = list(paths) or [settings.pathways_dir, settings.rules_dir]
    diagrams = [p for p in targets if _holds(p, (".bpmn",))]
    # Scenarios (tests/*.yaml next to diagrams) are journey tests, not rule files.
    scenarios = [p for p in targets if _is_scenario_file(p)] + [
        p / "tests" for p in diagrams if p.is_dir() and (p / "tests").is_dir()
    ]
    rule_files = [p for p in targets if _is_rules(p)]
    problems = [
        Problem("nothing to check here (no .bpmn or .yaml files)", file=str(p))
        for p in targets
        if p not in diagrams and p not in rule_files and p not in scenarios
    ]
    lines = [str(p) for p in problems]
    if scenarios:
        scenario_problems = _scenario_problems(scenarios)
        lines += [str(p) for p in scenario_problems]
        problems += scenario_problems
    if rule_files:
        # Rule files report file:line:column (YAML positions are exact).
        rule_problems = validate_rule_paths(rule_files, default_catalogue=settings.rules_dir / "catalogues")
        lines += [str(p) for p in rule_problems]
        problems += rule_problems
    if diagrams:
        # The same checks as every deploy (engine.pathways.versions), told the same rule sets.
        diagram_problems = validate_paths(
            diagrams, pathways_root=settings.pathways_dir, known_rule_sets=rule_set_names(settings.rules_dir)
        )
        lines += format_problems(diagram_problems).splitlines()
        problems += diagram_problems
    errors = errors_in(problems)
    if lines:
        click.echo("\n".join(lines))
    if errors:
        click.echo(f"{len(errors)} problem(s){_and_warnings(problems)}", err=True)
        sys.exit(1)
    click.echo(f"no problems found{_and_warnings(problems)}")


def _and_warnings(problems: list[Any]) -> str:
    warnings = len(problems) - len([p for p in problems if p.is_error])
    return f", {warnings} warning(s)" if warnings else ""


def _is_scenario_file(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix in (".yaml", ".yml")
        and path.parent.name == "tests"
        and _holds(path.parent.parent, (".bpmn",))
    )


def _is_rules(path: Path) -> bool:
    """A rule file, or a rules folder (rule files, catalogues/ or tests/ -- and no diagrams)."""
    if not path.is_dir():
        return path.suffix in (".yaml", ".yml") and not _is_scenario_file(path)
    return (
        any(path.glob("*.yaml"))
        or (path / "catalogues").is_dir()
        or (_holds(path, (".yaml", ".yml")) and not _holds(path, (".bpmn",)))
    )


def _scenario_problems(paths: list[Path]) -> list[Any]:
    from engine.errors import InvalidInputError
    from engine.scenarios import load_scenarios

    try:
        load_scenarios(paths)
    except InvalidInputError as exc:
        return list(exc.problems)
    return []


def _holds(path: Path, suffixes: tuple[str, ...]) -> bool:
    if path.is_dir():
        return any(p.suffix in suffixes for p in path.rglob("*"))
    return path.suffix in suffixes


@main.group()
def audit() -> None:
    """The event trail."""


_checkpoint_dir_option = click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The checkpoint folder (default: CAREPATH_CHECKPOINT_DIR).",
)


@audit.command("verify")
@click.option("--instance", "instance_ids", multiple=True, help="Only these instances.")
@click.option(
    "--organisation",
    default=None,
    help="Only this organisation's instances (what its auditors see; deletions need every trail).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, MAX_VERIFY_JOBS),
    default=None,
    help="Verify in this many processes, each a range of instance ids (default: CAREPATH_VERIFY_JOBS, 1).",
)
@_checkpoint_dir_option
@click.pass_context
def audit_verify(
    ctx: click.Context,
    instance_ids: tuple[str, ...],
    organisation: str | None,
    jobs: int | None,
    checkpoint_dir: Path | None,
) -> None:
    """Verify the event trail; exit 1 on any problem.

    Every chain (an edited, reordered, truncated or deleted event), every event's authentication
    code when CAREPATH_TRAIL_KEY_FILE is set (a chain rewritten without the key), every stored
    workflow state against the digest its newest event recorded, and every instance against the
    newest checkpoint in the checkpoint folder (a deleted instance, a trail cut back or rewritten).
    Without --instance or --organisation, the deployment trail too: its chain and codes, and that
    every pathway and rule-set version's deploy and activation, and every migration request and
    approval, is the one it recorded (an activation edited, added or deleted in the database).
    In production an unauthenticated trail is itself a problem. One streaming scan in constant
    memory (with --jobs, one per process over disjoint id ranges); progress goes to standard error.
    """
    from engine.audit import count_instances, latest_checkpoint, trail_key_of, verify_trail
    from engine.db.session import read_only
    from engine.four_eyes import verify_deployment_trail
    from engine.verifications import VerificationFailed, verify_every_trail

    carepath = _carepath(ctx)
    settings: Settings = carepath.settings
    folder = checkpoint_dir or settings.checkpoint_dir
    lines: list[str] = []
    checkpoint = None
    if folder is not None:
        try:
            checkpoint = latest_checkpoint(folder)
        except ValueError as exc:
            lines.append(str(exc))
    with read_only(carepath.sessions) as session:
        key = trail_key_of(session)
        total = count_instances(session, instance_ids or None, organisation=organisation)
    started = time.monotonic()

    def progress(checked: int) -> None:
        rate = checked / max(time.monotonic() - started, 1e-9)
        click.echo(
            f"verifying: {checked}/{total} instances ({100 * checked // max(total, 1)}%), {rate:.0f}/s", err=True
        )

    if instance_ids:
        with read_only(carepath.sessions) as session:
            found = verify_trail(session, instance_ids, checkpoint, progress=progress, organisation=organisation)
    else:
        try:
            found = verify_every_trail(
                carepath.sessions,
                checkpoint=checkpoint,
                jobs=jobs or settings.verify_jobs,
                progress=progress,
                organisation=organisation,
            )
        except VerificationFailed as exc:
            raise click.ClickException(str(exc)) from exc
    lines += [str(problem) for problem in found]
    if not instance_ids and organisation is None:  # every trail: who deployed and activated what, too
        with read_only(carepath.sessions) as session:
            checkpointed = checkpoint.deployment_head if checkpoint is not None else None
            lines += [str(problem) for problem in verify_deployment_trail(session, checkpointed)]
    if key is None:
        note = "the trail is not authenticated (no CAREPATH_TRAIL_KEY_FILE): a consistent rewrite cannot be detected"
        if settings.environment == "production":
            lines.append(note)
        else:
            click.echo(f"warning: {note}", err=True)
    if checkpoint is None:
        click.echo(
            "warning: no checkpoint to compare with (CAREPATH_CHECKPOINT_DIR, carepath audit checkpoint): "
            "a deleted instance cannot be detected",
            err=True,
        )
    if lines:
        click.echo("\n".join(lines))
        click.echo(f"event trail does NOT verify: {len(lines)} problem(s)", err=True)
        sys.exit(1)
    against = f"; checkpoint {Path(checkpoint.source).name} ({len(checkpoint.heads)} instances)" if checkpoint else ""
    click.echo("event trail verified" + (f" (authenticated with key {key.key_id}{against})" if key else against))


@audit.command("checkpoint")
@_checkpoint_dir_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, checkpoint_dir: Path | None) -> None:
    """Write a checkpoint now: every instance's trail head and a digest of the set, signed with the
    trail key, as a new file in the checkpoint folder (never overwriting one). The worker writes
    one every CAREPATH_CHECKPOINT_SECONDS."""
    from engine.audit import export_checkpoint

    carepath = _carepath(ctx)
    folder = checkpoint_dir or carepath.settings.checkpoint_dir
    if folder is None:
        raise click.ClickException("no checkpoint folder: set CAREPATH_CHECKPOINT_DIR or pass --checkpoint-dir")
    try:
        path = export_checkpoint(carepath.sessions, folder, carepath.clock.now())
    except OSError as exc:
        raise click.ClickException(f"cannot write the checkpoint in {folder}: {exc.strerror}") from exc
    click.echo(str(path))


@audit.command("sign-existing")
@click.pass_context
def audit_sign_existing(ctx: click.Context) -> None:
    """Authenticate the events written before CAREPATH_TRAIL_KEY_FILE was set, in every chain that
    verifies (a broken chain is left as it is, for an auditor to see), the deployment trail's too, and
    seal the stored states written without a seal that match their trail (verification then need not
    inflate them). Run once after adding the key, and after upgrading to a release with state seals."""
    from engine.audit import authenticate_existing, seal_existing_states
    from engine.db.session import unit_of_work
    from engine.four_eyes import authenticate_existing_deployments

    carepath = _carepath(ctx)
    try:
        with unit_of_work(carepath.sessions) as session:
            count = authenticate_existing(session)
            deployments = authenticate_existing_deployments(session)
            sealed = seal_existing_states(session)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{count} event(s) authenticated; {deployments} deployment trail event(s); {sealed} state(s) sealed")


@main.group()
def pathways() -> None:
    """Pathway versions."""


_AS = click.option(
    "--as",
    "staff_id",
    default=None,
    metavar="STAFF_ID",
    help="The member of staff doing this (recorded as cli:staff:STAFF_ID; four eyes compares people).",
)


def cli_actor(staff_id: str | None, default: str = "cli") -> str:
    """The actor the command line records: ``cli:staff:<id>`` for --as, else ``default`` (no person)."""
    from engine.access import STAFF_ID_PATTERN

    if staff_id is None:
        return default
    if not re.match(STAFF_ID_PATTERN, staff_id):
        raise click.BadParameter(
            "1-64 letters, digits or . _ : @ - (a staff identifier, never a name)", param_hint="--as"
        )
    return f"cli:staff:{staff_id}"


@pathways.command("deploy")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@_AS
@click.pass_context
def pathways_deploy(ctx: click.Context, path: Path | None, staff_id: str | None) -> None:
    """Deploy a pathway bundle at PATH (a folder or a .zip: the diagram, the shared sub-pathways it
    calls, forms and decision tables), or without PATH every pathway in the pathways folder.

    Nothing is deployed when any diagram is refused; each problem is printed as file:line: element: message.
    A bundle's calls and forms may also resolve in the pathways folder; what came from there, and what
    is missing, is listed by name. With four eyes on (the default), a new version is pending until a
    second author activates it (carepath pathways activate); a pathway's first folder version is active.
    """
    from engine.errors import DiagramError, InvalidInputError
    from engine.pathways.bundle import read_bundle_folder, read_bundle_zip_file
    from engine.pathways.validation import format_problems

    actor = cli_actor(staff_id)
    carepath = _carepath(ctx)
    try:
        if path is None:
            deployment = carepath.catalog.sync_library(actor=actor)
        else:
            if not path.is_dir() and path.suffix.lower() != ".zip":
                raise click.UsageError(f"{path}: PATH must be a folder or a .zip archive")
            bundle = read_bundle_folder(path) if path.is_dir() else read_bundle_zip_file(path)
            deployment = carepath.catalog.deploy_bundle(bundle, actor=actor)
    except InvalidInputError as exc:
        click.echo(format_problems(exc.problems) or exc.message, err=True)
        if path is not None and isinstance(exc, DiagramError):
            survey = carepath.catalog.survey(bundle.files, bundle.ignored)
            if survey.missing:
                click.echo("missing: " + ", ".join(survey.missing), err=True)
        click.echo(f"nothing deployed: {exc.message}", err=True)
        sys.exit(1)
    if deployment.warnings:
        click.echo(format_problems(deployment.warnings), err=True)
    if deployment.bundle is not None:
        for label, names in (
            ("contained", deployment.bundle.contained),
            ("from the pathways folder", deployment.bundle.from_pathways_folder),
            ("missing", deployment.bundle.missing),
            ("ignored", deployment.bundle.ignored),
        ):
            if names:
                click.echo(f"{label}: {', '.join(names)}")
    for info in deployment:
        state = (
            "active"
            if info.active
            else "pending: a second author activates it"
            if info.activated_at is None
            else "superseded"
        )
        click.echo(f"{info.pathway_id} {info.version[:12]}{' (latest)' if info.latest else ''} ({state})")


@pathways.command("activate")
@click.argument("pathway")
@click.argument("version")
@_AS
@click.pass_context
def pathways_activate(ctx: click.Context, pathway: str, version: str, staff_id: str | None) -> None:
    """Activate VERSION (a prefix of at least 4 characters) of PATHWAY: new instances start on it.

    Four eyes: --as names the author activating it, who must not be the one who deployed it (exit 1).
    """
    from engine.errors import CarePathError

    actor = cli_actor(staff_id)
    carepath = _carepath(ctx)
    try:
        info = carepath.catalog.activate(pathway, version, actor)
    except CarePathError as exc:
        click.echo(f"not activated: {exc.message}", err=True)
        sys.exit(1)
    click.echo(
        f"{info.pathway_id} {info.version[:12]} active (deployed by {info.deployed_by}, activated by "
        f"{info.activated_by} at {info.activated_at})"
    )


@pathways.command("versions")
@click.argument("pathway")
@click.pass_context
def pathways_versions(ctx: click.Context, pathway: str) -> None:
    """List PATHWAY's versions, newest first: active or pending, who deployed and who activated each."""
    from engine.errors import NotFoundError

    carepath = _carepath(ctx)
    try:
        versions = carepath.catalog.versions(pathway)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    for info in versions:
        state = "active" if info.active else "pending" if info.activated_at is None else "superseded"
        activated = "" if info.activated_at is None else f", activated {info.activated_at} by {info.activated_by}"
        click.echo(f"{info.version[:12]} {state}: deployed {info.deployed_at} by {info.deployed_by}{activated}")


@pathways.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--require-coverage", is_flag=True, help="Fail (exit 1) when a sequence flow is not taken.")
@click.pass_context
def pathways_test(ctx: click.Context, paths: tuple[Path, ...], require_coverage: bool) -> None:
    """Run the journey scenarios in PATHS (default: the pathways folder's tests/) on a throwaway database.

    A PATH is a pathways folder (its tests/*.yaml run against its diagrams) or scenario files in a
    pathways folder's tests/. Each scenario runs on its own temporary SQLite copy of the deployed
    folder with a manual clock; no configured database is opened. Prints a diff per failing step
    (with its file:line), then the sequence flows no scenario took, per diagram. Exits 1 on a
    failure (and with --require-coverage, on an untaken flow).
    """
    from engine.errors import CarePathError
    from engine.scenarios import load_scenarios, run_scenarios

    settings: Settings = ctx.obj["settings"]
    folder, files = _scenario_paths(list(paths), settings.pathways_dir)
    try:
        scenarios = load_scenarios(files, display_root=folder)
        if not scenarios:
            raise click.ClickException(f"no scenarios in {', '.join(str(f) for f in files)}")
        report = run_scenarios(scenarios, folder, settings.rules_dir)
    except CarePathError as exc:
        # Scenario problems keep their column (YAML positions are exact), as rule files' do.
        click.echo("\n".join(str(p) for p in exc.problems) or exc.message, err=True)
        click.echo(exc.message, err=True)
        sys.exit(1)
    click.echo(report.text())
    if not report.ok or (require_coverage and report.untaken()):
        sys.exit(1)


def _scenario_paths(paths: list[Path], default: Path) -> tuple[Path, list[Path]]:
    """The pathways folder the scenarios run against, and the scenario files or folders."""
    if not paths:
        if not (default / "tests").is_dir():
            raise click.ClickException(f"no scenarios: {default / 'tests'} is not a folder")
        return default, [default / "tests"]
    folders = {p if p.is_dir() and not _is_scenario_dir(p) else (p if p.is_dir() else p.parent).parent for p in paths}
    if len(folders) != 1:
        raise click.BadParameter("give scenarios of one pathways folder at a time", param_hint="PATHS")
    [folder] = folders
    files = [p / "tests" if p == folder else p for p in paths]
    return folder, files


def _is_scenario_dir(path: Path) -> bool:
    return path.name == "tests" and _holds(path.parent, (".bpmn",))


@main.command()
@click.option("--once", is_flag=True, help="Fire what is due now, then exit.")
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait when nothing is due.",
)
@click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Instances per pass (each is committed on its own).",
)
@click.option("--worker-id", default=None, help="Name recorded on timer_fired events (default host:pid).")
@click.option(
    "--heartbeat-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Touched on every turn of the loop (a supervisor's liveness check; see docs/operations.md).",
)
@click.pass_context
def worker(
    ctx: click.Context, once: bool, interval: float, batch: int, worker_id: str | None, heartbeat_file: Path | None
) -> None:
    """Fire due timers and deliver webhooks in a loop (and, every ten minutes, refresh the reports'
    summary). Run several on PostgreSQL to share the work; stop
    with SIGTERM/Ctrl-C.

    Refuses to start (exit 1) when the pathways or rules folder is missing or empty, unless
    CAREPATH_ALLOW_EMPTY_LIBRARY=1. While the database is unreachable it waits and tries again.
    Under systemd (Type=notify) it reports readiness and a watchdog heartbeat; with
    --heartbeat-file it touches that file instead, for other supervisors' health checks.
    """
    import os
    import signal
    import socket

    from engine.db.session import bounded_statements
    from engine.idempotency import IdempotencyStore
    from engine.instances.worker import run_worker
    from engine.library import EmptyLibraryError, read_library, require_library

    settings: Settings = ctx.obj["settings"]
    library = read_library(settings)
    try:
        require_library(settings, library)
    except EmptyLibraryError as exc:
        raise click.ClickException(str(exc)) from exc
    carepath = _carepath(ctx)
    if library.rule_sets:
        carepath.rule_sets.sync(actor="system")  # four eyes: a rule set's first version is active (bootstrap)
    idempotency = IdempotencyStore(carepath.sessions, carepath.clock)
    name = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    from .jobs import BackgroundJobs

    jobs = BackgroundJobs()

    reports = _housekeeping(carepath, idempotency)
    from .cli_pathway_checks import diagnoses_reader

    read_diagnoses = diagnoses_reader(carepath)  # instances started before the pathway check (engine.pathway_checks)

    def housekeeping() -> None:
        reports()  # purges idempotency records and ended web sessions too
        _take_over_verification(carepath, jobs)

    stopping: list[int] = []
    # Finish the instance in hand, then stop: nothing half-done is ever committed anyway.
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    click.echo(f"timer worker {name} started: CarePath {__version__}, {library.describe()}", err=True)
    from .supervision import Heartbeat

    heartbeat = Heartbeat(heartbeat_file)
    heartbeat.ready()
    if settings.trail_key_file is None:
        click.echo("warning: no CAREPATH_TRAIL_KEY_FILE: events are hash-chained but not authenticated", err=True)
    try:
        with bounded_statements(WORKER_STATEMENT_SECONDS):
            total = run_worker(
                carepath.instances,
                worker_id=name,
                batch=batch,
                interval=interval,
                once=once,
                should_stop=lambda: bool(stopping),
                report=lambda n: click.echo(f"{n} instance(s) advanced", err=True),
                housekeeping=housekeeping,
                heartbeat=heartbeat.beat,
                checkpoint=_checkpointer(carepath),
                checkpoint_seconds=settings.checkpoint_seconds,
                deliver=lambda: len(carepath.webhooks.run_once(between=heartbeat.beat)),
                escalate=lambda: carepath.referral_escalations.open_due() + carepath.treatment_summaries.open_due(),
                upgrade=read_diagnoses,
            )
    except KeyboardInterrupt:
        total = None
    finally:
        heartbeat.stopping()
    if once:
        jobs.wait()  # a verification taken over finishes before a one-off run exits
    click.echo(f"timer worker {name} stopped" + (f": {total} instance(s) advanced" if total is not None else ""))


def _take_over_verification(carepath: Any, jobs: Any) -> None:
    """A trail verification left by a process that died (engine.verifications) runs again here, on a
    thread of its own: timers keep firing meanwhile."""
    from engine.verifications import claim_abandoned, run_verification

    job_id = claim_abandoned(carepath.sessions, carepath.clock.now())
    if job_id is not None:
        click.echo(f"taking over trail verification {job_id}, left unfinished", err=True)
        jobs.start(
            f"verification-{job_id}",
            lambda: run_verification(
                carepath.sessions,
                job_id,
                carepath.clock.now,
                carepath.settings.checkpoint_dir,
                jobs=carepath.settings.verify_jobs,
            ),
        )


def _migrate_in_parts(
    carepath: Any, jobs: int, pathway: str | None, request_id: str | None, actor: str, dry_run: bool, progress: Any
) -> Any:
    """``migrate --jobs``: every share in a process of its own (api.cli_parts); an approved request is
    then marked executed by a pass over what is left (the instances refused, refused again).

    Raises: click.ClickException (a share failed), CarePathError."""
    from engine.instances.migration_requests import approve_migration

    from .cli_parts import PartFailed, migrate_in_parts

    try:
        report = migrate_in_parts(
            carepath.settings,
            jobs,
            pathway=pathway,
            request_id=request_id,
            actor=actor,
            dry_run=dry_run,
            progress=progress,
        )
    except PartFailed as exc:
        raise click.ClickException(f"{exc}; what was moved stays moved: run the command again to go on") from exc
    if request_id is not None:
        _approved, rest = approve_migration(carepath.instances, request_id, actor)
        moved_now = {item.instance_id for item in rest.instances}
        report.instances = [i for i in report.instances if i.instance_id not in moved_now] + rest.instances
    return report


def _part(text: str) -> tuple[int, int]:
    """--part K/N. Raises: click.BadParameter."""
    try:
        share, shares = (int(n) for n in text.split("/"))
    except ValueError:
        raise click.BadParameter("must be K/N, e.g. 1/4", param_hint="--part") from None
    if not 1 <= share <= shares:
        raise click.BadParameter("must be K/N with 1 <= K <= N", param_hint="--part")
    return share, shares


def _print_migration(report: Any, dry_run: bool, as_json: bool) -> None:
    """A migration's report, per instance (the command line's user may read patients' references)."""
    import json

    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would move" if dry_run else "moved"
        for item in report.instances:
            if item.refused:
                click.echo(f"{item.instance_id} ({item.patient_ref}): REFUSED: {item.refused}")
                continue
            click.echo(
                f"{item.instance_id} ({item.patient_ref}): {verb} {item.from_version[:12]} -> {item.to_version[:12]}"
            )
            for element in item.tasks_added:
                click.echo(f"    + task ahead: {element}")
            for element in item.tasks_removed:
                click.echo(f"    - task ahead: {element}")
            for timer in item.timers_moved:
                click.echo(f"    ~ timer {timer['element']}: {timer['from']} -> {timer['to']}")
        click.echo(
            f"{len(report.instances) - len(report.refused)} instance(s) {verb}, "
            f"{len(report.refused)} refused (target {report.to_version[:12]})"
        )


@main.command()
@click.argument("pathway", required=False)
@click.option("--dry-run", is_flag=True, help="Show what would change per instance; write nothing.")
@click.option(
    "--request",
    "ask",
    is_flag=True,
    help="Four eyes: run a dry run and keep it as a request a second author approves; prints its id.",
)
@click.option(
    "--approve",
    "request_id",
    default=None,
    metavar="REQUEST_ID",
    help="Four eyes: approve another author's request (--as) and move the instances.",
)
@_AS
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--part",
    default="1/1",
    show_default=True,
    help="K/N: move only the K-th of N disjoint shares of the instances (run N commands at once).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Move the instances in this many processes at once (one per core), each one share.",
)
@click.pass_context
def migrate(
    ctx: click.Context,
    pathway: str | None,
    dry_run: bool,
    ask: bool,
    request_id: str | None,
    staff_id: str | None,
    as_json: bool,
    part: str,
    jobs: int,
) -> None:
    """Move running and suspended instances of PATHWAY to its active version.

    Four eyes (on unless CAREPATH_FOUR_EYES=off): one author asks, `carepath migrate PATHWAY --request
    --as alice` (the dry run is kept); a second approves and moves them, `carepath migrate --approve
    REQUEST_ID --as bob`. Without an approved request only --dry-run runs.

    Instances whose completed work would change are refused, each with the reason; exits 1 then.
    Progress goes to standard error. Each instance is committed on its own: if the command is
    stopped, running it again (--approve the same request) moves the instances that were not moved
    yet. A large caseload moves faster in N processes, one per core: --jobs N, or N commands
    --part 1/N ... --part N/N run at once (on several hosts too); the request is marked executed by
    a run without --part (with --jobs, once every share is done).
    """
    if (pathway is None) == (request_id is None) or (request_id is not None and (ask or dry_run)) or (ask and dry_run):
        raise click.UsageError("give PATHWAY (with --dry-run or --request), or --approve REQUEST_ID alone")
    share, shares = _part(part)
    if jobs > 1 and (ask or shares > 1):
        raise click.UsageError("--jobs runs every share itself: not with --part or --request")

    from engine.errors import CarePathError
    from engine.instances.migration import MigrationProgress, migrate_pathway
    from engine.instances.migration_requests import approve_migration, request_migration

    actor = cli_actor(staff_id, "cli:migrate")
    carepath = _carepath(ctx)
    started = time.monotonic()

    def progress(step: MigrationProgress) -> None:
        rate = step.done / max(time.monotonic() - started, 1e-9)
        click.echo(
            f"migrating {pathway}: {step.done}/{step.total} ({100 * step.done // max(step.total, 1)}%), "
            f"{step.refused} refused, {step.fast} by the fast path, {rate:.0f}/s",
            err=True,
        )

    try:
        if ask:
            assert pathway is not None
            asked, report = request_migration(carepath.instances, pathway, actor)
            dry_run = True
        elif jobs > 1:
            report = _migrate_in_parts(carepath, jobs, pathway, request_id, actor, dry_run, progress)
        elif request_id is not None:
            _approved, report = approve_migration(
                carepath.instances, request_id, actor, progress=progress, part=(share, shares)
            )
        else:
            assert pathway is not None
            report = migrate_pathway(
                carepath.instances, pathway, actor=actor, dry_run=dry_run, progress=progress, part=(share, shares)
            )
    except CarePathError as exc:
        raise click.ClickException(exc.message) from exc
    _print_migration(report, dry_run, as_json)
    if ask:
        click.echo(
            f"migration request {asked.id}: a second author approves it with "
            f"carepath migrate --approve {asked.id} --as STAFF_ID"
        )
    if report.refused:
        sys.exit(1)


@main.command()
@click.option("--force", is_flag=True, help="Load even if the database holds patients not named SYN-...")
@click.pass_context
def demo(ctx: click.Context, force: bool) -> None:
    """Load synthetic demo patients (SYN-DEMO-...) at different points of the bundled pathways.

    Upgrades the schema and deploys the bundled pathways first; patients already loaded are skipped.
    For demonstrations only: refuses (exit 1) a database with patients whose reference does not
    start with SYN-, unless --force.
    """
    from engine.demo import load_demo
    from engine.errors import ConflictError

    say_database(ctx.obj["settings"])
    try:
        rows = load_demo(ctx.obj["settings"], force=force)
    except ConflictError as exc:
        raise click.ClickException(exc.message) from exc
    width = max([len("where they are"), *(len(r.stage) + (0 if r.loaded else 7) for r in rows)]) + 2
    click.echo(f"{'patient':<15}{'pathway':<31}{'where they are':<{width}}next due")
    for row in rows:
        due = (row.next_due_at or "")[:10]
        click.echo(
            f"{row.patient_ref:<15}{row.pathway_id:<31}{row.stage + ('' if row.loaded else ' (kept)'):<{width}}{due}"
        )
    click.echo(f"{sum(r.loaded for r in rows)} demo patient(s) loaded, {sum(not r.loaded for r in rows)} already there")


@main.group()
def token() -> None:
    """API tokens (only their SHA-256 is stored)."""


@token.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["system", "clinician", "author", "auditor", "admin", "manager", "patient"]),
)
@click.option("--label", default="", help="Who or what holds it (shown in listings, not a secret).")
@click.option(
    "--expires-in",
    default=None,
    metavar="DURATION",
    help="Lifetime as an ISO 8601 duration (P90D, P12W, PT8H); without it, valid until revoked.",
)
@click.option("--patient-ref", default=None, help="Role patient only: the patient whose own records it reads.")
@click.option(
    "--organisation",
    default=None,
    metavar="ID",
    help="The organisation whose patients it reaches (without it: every organisation, for development).",
)
@click.option(
    "--team",
    "teams",
    multiple=True,
    metavar="ID",
    help="A care team of the organisation whose patients it reaches (repeat; none: every team).",
)
@click.option(
    "--staff-id",
    default=None,
    metavar="STAFF_ID",
    help="The member of staff who holds it (a person's own token; four eyes compares holders).",
)
@click.pass_context
def token_create(
    ctx: click.Context,
    role: str,
    label: str,
    expires_in: str | None,
    patient_ref: str | None,
    organisation: str | None,
    teams: tuple[str, ...],
    staff_id: str | None,
) -> None:
    """Create a token and print its secret once: it cannot be shown again. A patient's token (for tests,
    demonstrations, a patient app) names its patient with --patient-ref; a person's own token names its
    holder with --staff-id (four eyes knows two tokens of one holder are one person).

    Its scope (docs/access.md): with --organisation it reaches that organisation's patients (an auditor's
    all of them, anyone else's those of the --team teams, or all teams when none is given); without it,
    every organisation's."""
    from engine.access import create_token, parse_lifetime
    from engine.db.session import unit_of_work
    from engine.errors import InvalidInputError

    try:
        lifetime = None if expires_in is None else parse_lifetime(expires_in)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="--expires-in") from exc
    if (role == "patient") != (patient_ref is not None):
        raise click.UsageError("--patient-ref is needed for role patient, and only for it")
    carepath = _carepath(ctx)
    try:
        with unit_of_work(carepath.sessions) as session:
            token_id, secret = create_token(
                session,
                role,
                label,
                carepath.clock,
                lifetime,
                patient_ref,
                organisation=organisation,
                teams=list(teams),
                staff_id=staff_id,
            )
    except InvalidInputError as exc:
        field = exc.problems[0].field if exc.problems else None
        hint = {"/teams": "--team", "/patient_ref": "--patient-ref", "/staff_id": "--staff-id"}.get(
            field or "", "--organisation"
        )
        raise click.BadParameter(exc.problems[0].message if exc.problems else exc.message, param_hint=hint) from exc
    until = "" if lifetime is None else f", expires {(carepath.clock.now() + lifetime).isoformat(timespec='minutes')}"
    click.echo(f"token {token_id} ({role}{until}); the secret is shown only now:", err=True)
    click.echo(secret)


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Revoked and expired tokens too.")
@click.pass_context
def token_list(ctx: click.Context, show_all: bool) -> None:
    """List tokens: id, role, created, expires, revoked, scope (``organisation:team,team``; ``org:*`` every
    team of one organisation; ``*`` every organisation), label (never a secret: only its hash is stored)."""
    from engine.access import list_tokens
    from engine.db.session import read_only

    carepath = _carepath(ctx)
    with read_only(carepath.sessions) as session:
        tokens = list_tokens(session, include_revoked=show_all, now=carepath.clock.now())
    # A patient token's patient reference is not listed: the list is for operators, not a patient index.
    click.echo(f"{'id':<22}{'role':<11}{'created':<27}{'expires':<27}{'revoked':<27}{'scope':<32}label")
    for t in tokens:
        expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never"
        revoked = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        scope = "*" if t.organisation is None else f"{t.organisation}:{','.join(t.teams) if t.teams else '*'}"
        click.echo(
            f"{t.id:<22}{t.role:<11}{t.created_at.isoformat(timespec='seconds'):<27}{expires:<27}"
            f"{revoked:<27}{scope:<32}{t.label}"
        )
    click.echo(
        f"{len(tokens)} token(s)" + ("" if show_all else " (--all shows revoked and expired ones too)"), err=True
    )


@token.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by its id (tok_...)."""
    from engine.access import revoke_token
    from engine.db.session import unit_of_work
    from engine.errors import NotFoundError

    carepath = _carepath(ctx)
    try:
        with unit_of_work(carepath.sessions) as session:
            revoke_token(session, token_id, carepath.clock)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"token {token_id} revoked")


@main.group()
def webhooks() -> None:
    """Webhook subscriptions, dead letters and replays (docs/webhooks.md); the worker delivers."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    metavar="TYPE",
    help="An event type to send (repeat; e.g. task.ready); --event all for every type.",
)
@click.option("--description", default="", help="Who receives it (shown in listings).")
@click.option(
    "--organisation",
    default=None,
    metavar="ID",
    help="The organisation whose instances' events it receives, and whose admins see it "
    "(without it: the deployment's, every organisation's events).",
)
@click.pass_context
def webhooks_add(
    ctx: click.Context, url: str, events: tuple[str, ...], description: str, organisation: str | None
) -> None:
    """Subscribe URL; print the signing secret once (whsec_...): it cannot be shown again."""
    from engine.care_teams import check_name
    from engine.errors import InvalidInputError
    from engine.webhooks import WEBHOOK_EVENT_TYPES

    if organisation is not None:
        try:
            check_name(organisation, "--organisation")
        except InvalidInputError as exc:
            raise click.BadParameter(exc.problems[0].message, param_hint="--organisation") from exc
    carepath = _carepath(ctx)
    wanted = list(WEBHOOK_EVENT_TYPES) if events == ("all",) else list(events)
    try:
        info, secret = carepath.webhook_admin.add(url, wanted, description, organisation=organisation)
    except InvalidInputError as exc:
        raise click.ClickException("; ".join(str(p) for p in exc.problems) or exc.message) from exc
    whose = f"organisation {organisation}" if organisation else "the deployment"
    click.echo(
        f"subscription {info.id} of {whose} ({', '.join(info.event_types)}); the secret is shown only now:", err=True
    )
    click.echo(secret)


@webhooks.command("list")
@click.option("--all", "show_all", is_flag=True, help="Removed subscriptions too.")
@click.pass_context
def webhooks_list(ctx: click.Context, show_all: bool) -> None:
    """List subscriptions: id, created, removed, organisation (* the deployment's), event types, URL
    (never a secret)."""
    carepath = _carepath(ctx)
    found = carepath.webhook_admin.subscriptions(include_removed=show_all)
    for s in found:
        removed = s.removed_at.isoformat(timespec="seconds") if s.removed_at else "-"
        created = s.created_at.isoformat(timespec="seconds")
        click.echo(
            f"{s.id:<24}{created:<27}{removed:<27}{s.organisation or '*':<16} {','.join(s.event_types)}  {s.url}"
        )
    click.echo(f"{len(found)} subscription(s)", err=True)


@webhooks.command("remove")
@click.argument("subscription_id")
@click.pass_context
def webhooks_remove(ctx: click.Context, subscription_id: str) -> None:
    """Stop a subscription (whsub_...); its pending deliveries are cancelled."""
    from engine.errors import NotFoundError

    carepath = _carepath(ctx)
    try:
        cancelled = carepath.webhook_admin.remove(subscription_id)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"subscription {subscription_id} removed; {cancelled} pending delivery(ies) cancelled")


@webhooks.command("dead-letters")
@click.option("--subscription", "subscription_id", default=None, help="Only this subscription's.")
@click.pass_context
def webhooks_dead_letters(ctx: click.Context, subscription_id: str | None) -> None:
    """List deliveries that failed every attempt: id, webhook-id, event type, instance, last error."""
    from engine.errors import NotFoundError

    carepath = _carepath(ctx)
    try:
        found = carepath.webhook_admin.dead_letters(subscription_id)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    for d in found:
        click.echo(f"{d.id:<8}{d.message_id:<38}{d.event_type:<22}{d.instance_id:<38}{d.last_error or '-'}")
    click.echo(f"{len(found)} dead letter(s)", err=True)


@webhooks.command("replay")
@click.argument("delivery_ids", nargs=-1, type=click.IntRange(min=1, max=2**31 - 1))
@click.option(
    "--subscription",
    "subscription_id",
    default=None,
    help="Instead of ids: this subscription's dead and delivered deliveries (with --since/--until).",
)
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]), default=None, help="UTC.")
@click.option("--until", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]), default=None, help="UTC.")
@click.pass_context
def webhooks_replay(
    ctx: click.Context, delivery_ids: tuple[int, ...], subscription_id: str | None, since: Any, until: Any
) -> None:
    """Deliver again, with the same webhook-id: dead letters by id, or a subscription's range."""
    from datetime import UTC

    from engine.errors import InvalidInputError, NotFoundError

    carepath = _carepath(ctx)
    try:
        replayed = carepath.webhook_admin.replay(
            delivery_ids=list(delivery_ids) or None,
            subscription_id=subscription_id,
            since=since.replace(tzinfo=UTC) if since else None,
            until=until.replace(tzinfo=UTC) if until else None,
        )
    except (InvalidInputError, NotFoundError) as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{len(replayed)} delivery(ies) due again; the worker sends them")


# Instances whose reports summary one round of housekeeping refreshes at most: after a bulk import the
# summary catches up over several rounds, and timers are never held up for long.
REPORT_REFRESH_PER_ROUND = 5_000
# The worker's bound on each statement and each round trip to PostgreSQL (engine.db.session.bounded_statements):
# far above anything its turns take (a batch of steps, a summary batch, a checkpoint), so only a database gone
# silent meets it; the turn then fails as a database outage does, and the worker waits and tries again.
WORKER_STATEMENT_SECONDS = 600.0


def _housekeeping(carepath: Any, idempotency: Any) -> Any:
    """Purge expired idempotency records and the records of signed-out web sessions whose cookies have all
    expired; bring the reports' summary up to date (engine.reports)."""
    from engine.access import purge_ended_web_sessions
    from engine.db.session import unit_of_work
    from engine.reports import refresh_summary

    def run() -> None:
        idempotency.purge_expired()
        with unit_of_work(carepath.sessions) as session:
            purge_ended_web_sessions(session, carepath.clock.now())
        refresh_summary(
            carepath.sessions,
            carepath.clock.now(),
            carepath.settings.referral_timeframes,
            limit=REPORT_REFRESH_PER_ROUND,
        )

    return run


def _checkpointer(carepath: Any) -> Any:
    """The worker's scheduled checkpoint: a folder that cannot be written is reported, and the
    timers go on (the next checkpoint is tried at its time)."""
    from engine.audit import export_checkpoint

    folder: Path | None = carepath.settings.checkpoint_dir
    if folder is None:
        return None

    def write() -> None:
        try:
            path = export_checkpoint(carepath.sessions, folder, carepath.clock.now())
        except OSError as exc:
            click.echo(f"checkpoint NOT written in {folder}: {exc.strerror}", err=True)
            return
        click.echo(f"checkpoint {path.name} written", err=True)

    return write


@click.command("deploy")
@_AS
@click.pass_context
def rules_deploy(ctx: click.Context, staff_id: str | None) -> None:
    """Record the rules folder's current text of every rule set. Four eyes (on unless
    CAREPATH_FOUR_EYES=off): a changed text is a pending version that evaluations in pathways do not
    use until a second author activates it (carepath rules activate); a rule set's first is active."""
    from engine.errors import CarePathError

    actor = cli_actor(staff_id)
    try:
        versions = _carepath(ctx).rule_sets.sync(actor=actor)
    except CarePathError as exc:
        # Every problem at its file and line, as validate names them (docs/rules.md).
        click.echo("\n".join([f"nothing recorded: {exc.message}", *(str(p) for p in exc.problems)]), err=True)
        sys.exit(1)
    for info in versions:
        state = "active" if info.active else "pending" if info.activated_at is None else "superseded"
        click.echo(f"{info.name} {info.version[:12]} ({state})")


@click.command("activate")
@click.argument("name")
@click.argument("version")
@_AS
@click.pass_context
def rules_activate(ctx: click.Context, name: str, version: str, staff_id: str | None) -> None:
    """Activate VERSION (a prefix of at least 4 characters) of rule set NAME: evaluations use it.

    Four eyes: --as names the author activating it, who must not be the one who deployed it (exit 1).
    """
    from engine.errors import CarePathError

    actor = cli_actor(staff_id)
    try:
        info = _carepath(ctx).rule_sets.activate(name, version, actor)
    except CarePathError as exc:
        click.echo(f"not activated: {exc.message}", err=True)
        sys.exit(1)
    click.echo(
        f"{info.name} {info.version[:12]} active (deployed by {info.deployed_by}, activated by "
        f"{info.activated_by} at {info.activated_at})"
    )


@click.command("versions")
@click.argument("name")
@click.pass_context
def rules_versions(ctx: click.Context, name: str) -> None:
    """List rule set NAME's recorded versions, newest first: active or pending, who deployed and activated each."""
    from engine.errors import NotFoundError

    try:
        versions = _carepath(ctx).rule_sets.versions(name)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    for info in versions:
        state = "active" if info.active else "pending" if info.activated_at is None else "superseded"
        activated = "" if info.activated_at is None else f", activated {info.activated_at} by {info.activated_by}"
        click.echo(f"{info.version[:12]} {state}: deployed {info.deployed_at} by {info.deployed_by}{activated}")


def _register_optional_groups() -> None:
    from .cli_access import purge_reads_command, reads
    from .cli_deaths import death_record
    from .cli_pathway_checks import check_diagnoses
    from .cli_patients import patients
    from .cli_reports import report
    from .cli_rules import rules

    for command in (rules_deploy, rules_activate, rules_versions):  # they need the engine's database
        rules.add_command(command)
    main.add_command(rules)
    pathways.add_command(check_diagnoses)
    main.add_command(death_record)
    main.add_command(patients)
    main.add_command(report)
    audit.add_command(reads)
    audit.add_command(purge_reads_command)


_register_optional_groups()
