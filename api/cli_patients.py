"""``carepath patients link | unlink | list``: a person's OpenID Connect identity linked to the patient
reference whose own records they may read (:mod:`engine.patients`). The same as ``/v1/patient-identities``,
for the operator who runs the identity process at the command line."""

from __future__ import annotations

import click

from engine.db.session import read_only, unit_of_work
from engine.errors import ConflictError, InvalidInputError, NotFoundError
from engine.patients import link_identity, list_identities, unlink_identity

__all__ = ["patients"]

# Who linked, as the trail of links names them: the operator's command line (its OS user is not a staff id).
LINKED_BY = "admin:cli"


def _problem(exc: InvalidInputError) -> click.ClickException:
    return click.ClickException("; ".join(f"{p.field}: {p.message}" for p in exc.problems) or exc.message)


@click.group()
def patients() -> None:
    """Patients' identities: which OpenID Connect subject reads which patient's own records."""


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
