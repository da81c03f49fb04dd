"""``carepath death-record show|withdraw``: a patient's recorded death (engine.instances.deaths), read at
the command line, and withdrawn with a reason when it was recorded in error (the wrong patient named).

Recording a death is the ``patient_died`` message's work (``POST /v1/messages``), never this command's."""

from __future__ import annotations

import json

import click

from engine.errors import InvalidInputError, NotFoundError

__all__ = ["death_record"]


@click.group("death-record")
def death_record() -> None:
    """A patient's recorded death: starts for them are refused while it stands."""


@death_record.command("show")
@click.argument("patient_ref")
@click.pass_context
def show(ctx: click.Context, patient_ref: str) -> None:
    """Print PATIENT_REF's death record as JSON (who recorded it and when; withdrawn or not)."""
    from .cli import carepath_of

    try:
        found = carepath_of(ctx).instances.death_record(patient_ref)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="PATIENT_REF") from exc
    if found is None:
        raise click.ClickException("no death is recorded for this patient")
    click.echo(json.dumps(found, indent=2))


@death_record.command("withdraw")
@click.argument("patient_ref")
@click.option("--reason", required=True, help="Why the record was wrong (kept on the record, never logged).")
@click.pass_context
def withdraw(ctx: click.Context, patient_ref: str, reason: str) -> None:
    """Withdraw PATIENT_REF's death record made in error: starts are allowed again. Instances it ended
    stay ended (their trails say why); start what the patient needs."""
    from .cli import carepath_of

    try:
        found = carepath_of(ctx).instances.withdraw_death(patient_ref, "cli:death-record", reason)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="--reason or PATIENT_REF") from exc
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(found, indent=2))
