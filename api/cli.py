"""The ``carepath`` command line: serve, database, validation, audit, tokens, rules.

Settings come from the environment (``CAREPATH_DATABASE_URL``, ``CAREPATH_PATHWAYS_DIR``,
``CAREPATH_RULES_DIR``); SQLite in ``./instance/`` is the default.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _carepath(ctx: click.Context, upgrade: bool = True) -> Any:
    from engine import CarePath

    obj = ctx.ensure_object(dict)
    if "carepath" not in obj:
        obj["carepath"] = CarePath(obj.get("settings") or _settings(), upgrade=upgrade)
        ctx.call_on_close(obj["carepath"].close)
    return obj["carepath"]


@click.group()
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

    Upgrades the database schema and deploys the bundled pathways first.
    """
    from api import create_app

    app = create_app()
    click.echo(f"CarePath API on http://{host}:{port}/v1/ (database: {_redacted(app.config['DATABASE_URL'])})")
    app.run(host=host, port=port, threaded=True)


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
    upgrade_schema(settings.database_url, revision)
    click.echo(f"database at {revision}")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check diagrams (*.bpmn) and rule files (*.yaml); print file:line: element: message.

    With no PATH, checks the configured pathways and rules folders. Exits 1 when anything is wrong.
    """
    from engine.validation import format_problems, validate_paths

    from .cli_rules import known_rule_sets, validate_rule_paths

    settings: Settings = ctx.obj["settings"]
    targets = list(paths) or [settings.pathways_dir, settings.rules_dir]
    # Each checker takes the files of its own kind from the paths and folders given.
    problems = validate_rule_paths(targets)
    problems += validate_paths(targets, pathways_root=settings.pathways_dir,
                               known_rule_sets=known_rule_sets(settings.rules_dir))
    if problems:
        click.echo(format_problems(problems))
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("no problems found")


@main.group()
def audit() -> None:
    """The event trail."""


@audit.command("verify")
@click.option("--instance", "instance_ids", multiple=True, help="Only these instances.")
@click.pass_context
def audit_verify(ctx: click.Context, instance_ids: tuple[str, ...]) -> None:
    """Verify every instance's hash-chained event trail; exit 1 on any edited, reordered or deleted event."""
    from engine.audit import verify_trail
    from engine.db.session import unit_of_work

    carepath = _carepath(ctx)
    with unit_of_work(carepath.sessions) as session:
        problems = verify_trail(session, instance_ids or None)
    if problems:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"event trail does NOT verify: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("event trail verified")


@main.group()
def pathways() -> None:
    """Pathway versions."""


@pathways.command("deploy")
@click.pass_context
def pathways_deploy(ctx: click.Context) -> None:
    """Deploy the current version of every pathway in the pathways folder."""
    carepath = _carepath(ctx)
    for info in carepath.catalog.sync_library(actor="cli"):
        click.echo(f"{info.pathway_id} {info.version[:12]}{' (latest)' if info.latest else ''}")


def _register_optional_groups() -> None:
    from .cli_rules import rules

    main.add_command(rules)


_register_optional_groups()
