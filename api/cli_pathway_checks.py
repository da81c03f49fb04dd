"""``carepath pathways check-diagnoses``: read the diagnoses of the instances that carry no pathway check
(engine.pathway_checks.read_diagnoses), at once, with progress; and the worker's turn of the same reading.

The pathway check (an instance whose diagnosis names another cancer site than its pathway's) is set at each
start and correction from schema revision 0034 on. The instances started before it carry none until their
diagnoses are read again: a worker does it in the background, a batch a turn until done, and this command
does it at once (an upgrade on a deployment with no worker running, or one that wants it done now). With
``--again`` it reads every instance again, after the diagnoses' vocabulary named more sites."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

__all__ = ["check_diagnoses", "diagnoses_reader"]

# How long the command waits for a worker that holds the reading for its batch, before asking again.
_BUSY_WAIT_SECONDS = 1.0


@click.command("check-diagnoses")
@click.option("--again", is_flag=True, help="Read every instance that has not ended again, from the first.")
@click.option(
    "--batch", type=click.IntRange(1, 10000), default=1000, show_default=True, help="Instances read per batch."
)
@click.pass_context
def check_diagnoses(ctx: click.Context, again: bool, batch: int) -> None:
    """Read the diagnoses of the instances that have not ended and carry no pathway check (those started
    before the check existed), and ask for the check where a diagnosis names another cancer site than the
    pathway's and no clinician has confirmed the pathway since. Workers do this in the background after an
    upgrade; this does it at once. Progress goes to standard error; stopped, it goes on from its last batch
    when run again (or in a worker). --again reads every instance again (after the diagnoses' vocabulary
    changed). Prints counts only, never a patient's data."""
    from engine.errors import RuleFileError
    from engine.pathway_checks import read_again, read_diagnoses, unread_count

    from .cli import carepath_of

    carepath = carepath_of(ctx)
    if again:
        read_again(carepath)
    total, read, asked = unread_count(carepath), 0, 0
    while True:
        try:
            turn = read_diagnoses(carepath, batch)
        except RuleFileError as exc:
            raise click.ClickException(f"the diagnoses' vocabulary cannot be read: {exc.message}") from exc
        if turn.busy:  # a worker is reading a batch: it moves the task on; wait for it
            time.sleep(_BUSY_WAIT_SECONDS)
            continue
        read, asked = read + turn.read, asked + turn.asked
        if turn.read:
            click.echo(f"read {read} of {total} instance(s): {asked} pathway check(s) asked", err=True)
        if turn.done:
            break
    click.echo(
        f"diagnoses read: {read} instance(s) read, {asked} now wait for a pathway check "
        "(GET /v1/instances?pathway_check=pending; the web app's patients list, 'Only pathways to check')"
    )


def diagnoses_reader(carepath: Any) -> Callable[[], int]:
    """A worker's turn of the same reading (run after its timers): one batch while the task is not done, then
    nothing, not even a query, for the rest of the process's life. Returns the instances it read (the worker
    goes round again at once while there are any, firing the timers due between batches)."""
    from engine.errors import RuleFileError
    from engine.pathway_checks import read_diagnoses

    done: list[bool] = []

    def turn() -> int:
        if done:
            return 0
        try:
            result = read_diagnoses(carepath)
        except RuleFileError:  # the vocabulary is being fixed: the timers go on, the reading waits
            click.echo("diagnoses not read: the diagnoses' vocabulary cannot be read", err=True)
            return 0
        if result.done:
            done.append(True)
        if result.asked:
            click.echo(f"{result.asked} pathway check(s) asked (diagnoses read again)", err=True)
        if result.done and result.read:
            click.echo("diagnoses read: every instance started before the pathway check is read", err=True)
        return result.read

    return turn
