"""``carepath report measures`` and ``carepath report cosd``: the personalised care measures
(aggregated, small counts suppressed as in the API) and the COSD-shaped export (one row per patient
and care plan item) at the command line, as CSV or JSON (docs/measures.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from engine.db.session import read_only
from engine.errors import InvalidInputError
from engine.reports import (
    COSD_COLUMNS,
    MEASURE_TABLE_COLUMNS,
    MeasureQuery,
    cosd_table,
    csv_of_texts,
    csv_text,
    measure_table,
    measures_report,
    refresh_summary,
)

from .cli_access import option_time

__all__ = ["report"]


def _query(since: str | None, until: str | None, pathway: str | None, now: datetime) -> MeasureQuery:
    try:
        return MeasureQuery.of(option_time(since, "--from"), option_time(until, "--to"), pathway, now=now)
    except InvalidInputError as exc:
        problem = exc.problems[0]
        raise click.BadParameter(problem.message, param_hint=f"--{problem.field}") from exc


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"written to {output}", err=True)


_options = [
    click.option(
        "--from",
        "since",
        help="Period start, a date or date-time (UTC unless a zone is given); default: a year before --to.",
    ),
    click.option("--to", "until", help="Period end, excluded; default: now."),
    click.option("--pathway", help="One pathway's id; default: every pathway."),
    click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True),
    click.option(
        "--output",
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        help="Write to this file instead of standard output.",
    ),
]


def _period_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_options):
        command = option(command)
    return command


@click.group()
def report() -> None:
    """Service insight: the personalised care measures and the COSD export (docs/measures.md)."""


@report.command("measures")
@_period_options
@click.pass_context
def measures(
    ctx: click.Context, since: str | None, until: str | None, pathway: str | None, fmt: str, output: Path | None
) -> None:
    """The measures of a period: aggregated, counts below CAREPATH_REPORT_MIN_COUNT suppressed."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    now = carepath.clock.now()
    query = _query(since, until, pathway, now)
    refreshed = refresh_summary(
        carepath.sessions, now, carepath.settings.referral_timeframes
    )  # what the worker has not caught up with yet
    click.echo(f"summary: {refreshed} instance(s) refreshed", err=True)
    with read_only(carepath.sessions) as session:
        found = measures_report(
            session, query, now, carepath.settings.report_min_count, carepath.settings.referral_timeframes
        )
    _write(
        csv_text(MEASURE_TABLE_COLUMNS, measure_table(found)) if fmt == "csv" else json.dumps(found, indent=2) + "\n",
        output,
    )


@report.command("refresh")
@click.pass_context
def refresh(ctx: click.Context) -> None:
    """Bring the reports' summary up to date with every instance now (the worker does it every ten
    minutes; a first run over a large database takes a while)."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    refreshed = refresh_summary(carepath.sessions, carepath.clock.now(), carepath.settings.referral_timeframes)
    click.echo(f"summary: {refreshed} instance(s) refreshed")


@report.command("cosd")
@_period_options
@click.pass_context
def cosd(
    ctx: click.Context, since: str | None, until: str | None, pathway: str | None, fmt: str, output: Path | None
) -> None:
    """The personalised care fields in COSD's shape, one row per patient and care plan item, with
    dates: patient data, for the data team's submission (keep the file as you keep patient records)."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    query = _query(since, until, pathway, carepath.clock.now())
    try:
        with read_only(carepath.sessions) as session:
            rows = cosd_table(session, query)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="--to") from exc
    if fmt == "csv":
        _write(csv_of_texts(COSD_COLUMNS, rows), output)
    else:
        _write(json.dumps([dict(zip(COSD_COLUMNS, row, strict=True)) for row in rows], indent=1) + "\n", output)
    click.echo(f"{len(rows)} row(s)", err=True)
