"""``carepath rules ...``: test, explain and simulate the needs-to-interventions rules.

The ``carepath`` group (api/cli.py) adds :data:`rules` and sets ``ctx.obj = {"settings": ...}``;
``rules explain`` opens that database (a test may hand it ``{"session_factory": ...}`` instead).
``carepath validate`` calls :func:`validate_rule_paths`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from engine.db.session import make_engine, make_session_factory, read_only, upgrade_schema
from engine.errors import CarePathError, Problem, RuleFileError
from engine.reports.charts import demand_chart
from engine.rules.catalogue import WARNING_SIGNS_FILE, load_catalogue
from engine.rules.explain import explain_evaluation
from engine.rules.loader import load_rule_file
from engine.rules.registry import RuleSetRegistry
from engine.rules.simulate import simulate
from engine.rules.testing import load_cases, run_rule_tests
from engine.rules.warning_signs import load_warning_signs
from engine.settings import Settings, bundled_rules_dir

__all__ = ["redacted_url", "rules", "say_database", "validate_rule_paths"]


def _obj() -> dict[str, Any]:
    ctx = click.get_current_context()
    return ctx.obj if isinstance(ctx.obj, dict) else {}


def _rules_dir(option: Path | None) -> Path:
    if option is not None:
        return option
    settings = _obj().get("settings")
    return Path(getattr(settings, "rules_dir", None) or bundled_rules_dir())


@contextmanager
def _sessions() -> Iterator[Any]:
    """The session factory a test handed in, or one on the configured database (schema upgraded first,
    as every other command that opens it does; named on stderr)."""
    factory = _obj().get("session_factory")
    if factory is not None:
        yield factory
        return
    settings = _obj().get("settings") or Settings.from_env()
    say_database(settings)
    upgrade_schema(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def redacted_url(url: str) -> str:
    """A database URL without its user and password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def say_database(settings: Settings) -> None:
    """Every command that opens the database says which one, on stderr (user and password redacted),
    so its standard output stays what it prints (a token's secret, JSON)."""
    click.echo(f"database: {redacted_url(settings.database_url)}", err=True)


def _fail(exc: CarePathError) -> click.ClickException:
    return click.ClickException(str(exc))


_rules_dir_option = click.option(
    "--rules-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of rule files (default: the configured rules_dir).",
)


@click.group("rules")
def rules() -> None:
    """Needs-to-interventions rules: test, explain, simulate; deploy, activate (four eyes), versions."""


@rules.command("test")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@_rules_dir_option
@click.option("--cohort", default=500, show_default=True, help="Synthetic patients checked for contradictions.")
def test_command(path: Path | None, rules_dir: Path | None, cohort: int) -> None:
    """Run the clinician rule tests in PATH (default: RULES_DIR/tests).

    Prints a diff for each failing case, the rules no case fires, and pairs of rules that
    contradict. Exits 1 on a failure or a contradiction.
    """
    registry = RuleSetRegistry(_rules_dir(rules_dir))
    try:
        report = run_rule_tests([path or registry.rules_dir / "tests"], registry, cohort=cohort)
    except CarePathError as exc:
        raise _fail(exc) from exc
    click.echo(report.text())
    if not report.ok:
        raise SystemExit(1)


@rules.command("explain")
@click.argument("evaluation_id")
@click.option("--why", "why", metavar="REFERRAL", help="Why was this referral / intervention proposed?")
@click.option("--why-not", "why_not", metavar="REFERRAL", help="Why was it not proposed?")
@_rules_dir_option
def explain_command(evaluation_id: str, why: str | None, why_not: str | None, rules_dir: Path | None) -> None:
    """Explain a stored evaluation, using the exact rule text it used."""
    if (why is None) == (why_not is None):
        raise click.UsageError("give exactly one of --why or --why-not")
    registry = RuleSetRegistry(_rules_dir(rules_dir))
    with _sessions() as factory, read_only(factory) as session:
        try:
            explanation = explain_evaluation(session, registry, evaluation_id, why=why, why_not=why_not)
        except CarePathError as exc:
            raise _fail(exc) from exc
    click.echo(explanation.text())


@rules.command("simulate")
@click.option("--cohort", type=click.IntRange(min=1), required=True, help="Number of synthetic patients.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--ruleset", default=None, help="Rule set name (default: every rule set).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--svg",
    "svg_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the demand chart (referrals per service by urgency) to this SVG file.",
)
@_rules_dir_option
def simulate_command(
    cohort: int, seed: int, ruleset: str | None, as_json: bool, svg_file: Path | None, rules_dir: Path | None
) -> None:
    """Expected referrals per service on a synthetic cohort drawn from the concern catalogue."""
    registry = RuleSetRegistry(_rules_dir(rules_dir))
    try:
        names = [ruleset] if ruleset else registry.names()
        reports = [simulate(registry.current(name), cohort, seed) for name in names]
    except CarePathError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        click.echo("\n\n".join(r.text() for r in reports))
    if svg_file is not None:
        _write_demand_chart(svg_file, reports, cohort, seed)


def _write_demand_chart(path: Path, reports: list[Any], cohort: int, seed: int) -> None:
    """The simulation's referrals per service by urgency (every rule set's together), as the manager
    page draws demand (engine.reports.charts)."""
    referrals: dict[str, dict[str, int]] = {}
    for report in reports:
        for service, counts in report.referrals.items():
            for urgency, count in counts.items():
                referrals.setdefault(service, {})[urgency] = referrals.get(service, {}).get(urgency, 0) + count
    names = ", ".join(report.ruleset for report in reports)
    path.write_text(
        demand_chart(
            "demand",
            f"Expected referrals per service: synthetic cohort of {cohort} (seed {seed}), rule set {names}",
            "A bar per support service, stacked by urgency: emergency (red), urgent (orange), soon (blue), routine "
            "(green). A synthetic draw, not epidemiological data.",
            referrals,
        ),
        encoding="utf-8",
    )
    click.echo(f"demand chart written to {path}", err=True)


def validate_rule_paths(paths: Iterable[Path | str], default_catalogue: Path | None = None) -> list[Problem]:
    """Check rule folders or files: the catalogue, every rule file, every test-case file.

    A folder is a rules folder (``*.yaml`` rule files, ``catalogues/``, ``tests/``). A single
    file is checked against the catalogue of its folder (or of the folder above, for a file
    in ``tests/``); where there is none, against ``default_catalogue`` (the deployment's).
    A catalogue file, or the ``catalogues/`` folder, is checked as the catalogue (with its warning
    signs, as a rules folder's are).
    Returns every problem found; an empty list means valid.
    """
    problems: list[Problem] = []
    for path in map(Path, paths):
        problems += _rule_path_problems(path, default_catalogue)
    return problems


def _rule_path_problems(path: Path, default_catalogue: Path | None) -> list[Problem]:
    """:func:`validate_rule_paths` for one path."""
    if path.name == "catalogues" and path.is_dir() or path.parent.name == "catalogues":
        # A catalogue file (or the folder) is checked as the catalogue it belongs to, not as a rule file.
        return _catalogue_problems(path if path.is_dir() else path.parent)
    if path.is_dir():
        rule_files, case_dirs, folder = sorted(path.glob("*.yaml")), [path / "tests"], path
    elif path.parent.name == "tests":
        rule_files, case_dirs, folder = [], [path], path.parent.parent
    else:
        rule_files, case_dirs, folder = [path], [], path.parent
    catalogue_dir = folder / "catalogues"
    if not catalogue_dir.is_dir() and default_catalogue is not None:
        catalogue_dir = default_catalogue
    try:
        catalogue = load_catalogue(catalogue_dir)
    except RuleFileError as exc:
        return list(exc.problems)
    problems = _warning_sign_problems(catalogue_dir) if catalogue_dir == folder / "catalogues" else []
    for rule_file in rule_files:
        try:
            load_rule_file(rule_file, catalogue)
        except RuleFileError as exc:
            problems.extend(exc.problems)
    for cases in case_dirs:
        if not cases.exists():
            continue
        try:
            load_cases([cases], catalogue)
        except RuleFileError as exc:
            problems.extend(exc.problems)
    return problems


def _catalogue_problems(folder: Path) -> list[Problem]:
    """The problems of the catalogue in ``folder``: its three files and its warning signs."""
    try:
        load_catalogue(folder)
    except RuleFileError as exc:
        return list(exc.problems)
    return _warning_sign_problems(folder)


def _warning_sign_problems(folder: Path) -> list[Problem]:
    """The problems of ``folder``'s warning signs file, when it has one (its urgencies, escalation bounds,
    contacts, sources), as the warning-sign triage reads it."""
    path = folder / WARNING_SIGNS_FILE
    if not path.exists():
        return []
    try:
        load_warning_signs(path)
    except RuleFileError as exc:
        return list(exc.problems)
    return []
