"""``carepath patients link | unlink | list``: a person's OpenID Connect identity linked to the patient
reference whose own records they may read (:mod:`engine.patients`). The same as ``/v1/patient-identities``,
for the operator who runs the identity process at the command line. ``carepath patients export``: everything
CarePath holds about one patient, for a subject access request (:mod:`engine.subject_access`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from engine.db.session import read_only, unit_of_work
from engine.errors import ConflictError, InvalidInputError, NotFoundError
from engine.patients import link_identity, list_identities, unlink_identity
from engine.subject_access import subject_access_export

__all__ = ["patients"]

# Who linked, as the trail of links names them: the operator's command line (its OS user is not a staff id).
LINKED_BY = "admin:cli"


def _problem(exc: InvalidInputError) -> click.ClickException:
    return click.ClickException("; ".join(f"{p.field}: {p.message}" for p in exc.problems) or exc.message)


@click.group()
def patients() -> None:
    """Patients: their identities (which OpenID Connect subject reads which patient's own records), and the
    export of what CarePath holds about one of them (a subject access request)."""


@patients.command("link")
@click.option("--issuer", required=True, help="The identity provider's issuer (as in its tokens' iss).")
@click.option("--subject", required=True, help="The person's subject id at that provider (sub).")
@click.option("--patient-ref", required=True, help="The patient reference whose own records they read.")
@click.pass_context
def link(ctx: click.Context, issuer: str, subject: str, patient_ref: str) -> None:
    """Link a person's identity to a patient reference (again to the same patient: nothing changes)."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    try:
        with unit_of_work(carepath.sessions) as session:
            found = link_identity(session, issuer, subject, patient_ref, LINKED_BY, carepath.clock)
    except InvalidInputError as exc:
        raise _problem(exc) from exc
    except ConflictError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"identity {found.id} linked (since {found.linked_at.isoformat(timespec='seconds')})")


@patients.command("unlink")
@click.option("--issuer", required=True)
@click.option("--subject", required=True)
@click.pass_context
def unlink(ctx: click.Context, issuer: str, subject: str) -> None:
    """Remove a link: the person no longer reads that patient's records."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    try:
        with unit_of_work(carepath.sessions) as session:
            found = unlink_identity(session, issuer, subject)
    except InvalidInputError as exc:
        raise _problem(exc) from exc
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"identity {found.id} unlinked")


@patients.command("list")
@click.option("--patient-ref", default=None, help="Only this patient's identities.")
@click.pass_context
def list_links(ctx: click.Context, patient_ref: str | None) -> None:
    """The linked identities: id, patient reference, issuer, subject, when and by whom."""
    from .cli import carepath_of

    carepath = carepath_of(ctx)
    with read_only(carepath.sessions) as session:
        found = list_identities(session, patient_ref, limit=10_000)
    for item in found:
        click.echo(
            f"{item.id}\t{item.patient_ref}\t{item.issuer}\t{item.subject}\t"
            f"{item.linked_at.isoformat(timespec='seconds')}\t{item.linked_by}"
        )
    click.echo(f"{len(found)} identity link(s)", err=True)


@patients.command("export")
@click.argument("patient_ref")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the JSON document to this file (created with mode 0600) instead of standard output.",
)
@click.option(
    "--as",
    "staff_id",
    required=True,
    metavar="STAFF_ID",
    help="The data protection officer (or their delegate) answering the request: recorded in the access log.",
)
@click.pass_context
def export(ctx: click.Context, patient_ref: str, output: Path | None, staff_id: str) -> None:
    """Everything CarePath holds about PATIENT_REF, as one JSON document, for a subject access request (UK
    GDPR Article 15): their pathways with the data recorded, care plans, summaries, rule evaluations with their
    facts, event trails, death record, linked identities and who looked at their records. Review it before it
    is released. The export is recorded in the access log; standard error says what it holds, never a value."""
    from .cli import carepath_of, cli_actor

    carepath = carepath_of(ctx)
    try:
        document = subject_access_export(carepath, patient_ref, cli_actor(staff_id))
    except InvalidInputError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="PATIENT_REF") from exc
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    if output is None:
        click.echo(text)
    else:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    click.echo(
        f"exported: {len(document['instances'])} pathway instance(s), {len(document['accesses'])} access record(s)"
        + ("" if document["accesses_complete"] else " (the access log holds more: ask `GET /v1/access-log`)")
        + (", a death record" if document["death_record"] else ""),
        err=True,
    )
