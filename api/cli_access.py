"""``carepath audit reads`` and ``carepath audit purge-reads``: who looked at a patient's records (the
access log, :mod:`engine.access_log`), for auditors at the command line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import click
from dateutil.relativedelta import relativedelta

from engine.access_log import ReadFilter, list_reads, purge_reads
from engine.db.session import read_only
from engine.errors import InvalidInputError

__all__ = ["option_time", "purge_reads_command", "reads"]

_PERIOD = re.compile(r"^P(?=\d)(?:(\d{1,3})Y)?(?:(\d{1,4})M)?(?:(\d{1,5})D)?$")


def option_time(value: str | None, name: str) -> datetime | None:
    """A command-line date or date-time (UTC unless a zone is given). Raises: click.BadParameter."""
    if value is None:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            "an ISO date or date-time, e.g. 2026-11-01 or 2026-11-01T09:00+00:00", param_hint=name
        ) from exc
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


@click.command("reads")
@click.option("--patient", "patient_ref", help="Who looked at this patient's records.")
@click.option("--instance", "instance_id", help="... at this instance's records.")
@click.option("--actor", help="What this caller looked at (e.g. clinician:tok_0123456789abcdef).")
@click.option("--since", help="From this date or date-time (UTC unless a zone is given).")
@click.option("--until", help="Before this date or date-time.")
@click.option("--organisation", help="Only the records of this organisation's patients.")
@click.option(
    "--break-glass",
    "break_glass",
    is_flag=True,
    help="Only break-glass reads: clinicians reading outside their care teams, with their reasons.",
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.pass_context
def reads(
    ctx: click.Context,
    patient_ref: str | None,
    instance_id: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
    organisation: str | None,
    break_glass: bool,
    limit: int,
) -> None:
    """Print the access records (one JSON object a line, newest first): who read which instance's
    records, when, through which route, on whose behalf and with what outcome; for a break-glass read,
    its reason code and the clinician's note."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    where = ReadFilter(
        patient_ref=patient_ref,
        instance_id=instance_id,
        actor=actor,
        since=option_time(since, "--since"),
        until=option_time(until, "--until"),
        organisation=organisation,
        break_glass=True if break_glass else None,
    )
    cursor: str | None = None
    printed = 0
    try:
        while printed < limit:
            with read_only(carepath.sessions) as session:
                items, cursor = list_reads(session, where, cursor, min(200, limit - printed))
            for item in items:
                click.echo(json.dumps(item, sort_keys=True))
            printed += len(items)
            if cursor is None:
                break
    except InvalidInputError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{printed} access record(s)", err=True)


@click.command("purge-reads")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="An ISO 8601 period: erase the records older than this, e.g. P8Y (the retention period).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge_reads_command(ctx: click.Context, older_than: str, yes: bool) -> None:
    """Erase access records past their retention period (the deployment's records policy)."""
    from .cli import carepath_of

    match = _PERIOD.match(older_than)
    if match is None:
        raise click.BadParameter("years, months and days, e.g. P8Y or P6M", param_hint="--older-than")
    years, months, days = (int(part or 0) for part in match.groups())
    carepath = carepath_of(ctx)
    before = carepath.clock.now() - relativedelta(years=years, months=months, days=days)
    if not yes:
        click.confirm(f"Erase the access records from before {before.isoformat()}?", abort=True)
    count = purge_reads(carepath.sessions, before)
    click.echo(f"{count} access record(s) erased (before {before.isoformat()})")
