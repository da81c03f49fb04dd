"""Documents of an instance: the Personalised Care Plan (and moving its items on), the End of
Treatment Summary (the latest written, or that of one phase of care: each course of treatment that
ended has its own, listed at ``end-of-treatment-summaries``) and a man's active surveillance plan
(prostate cancer, in place of an end of treatment summary), as JSON, as a printable page
(``Accept: text/html``) or as a PDF for sending to the GP practice (``Accept: application/pdf``; the
same page, rendered by WeasyPrint).

The language comes from ``Accept-Language`` (Swedish or English; anything else gets English) and is
sent back as ``Content-Language``. The documents hold patient data: they are never logged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, json, request

from engine import CarePath
from engine.documents.build import (
    LANGUAGES,
    active_surveillance_plan,
    care_plan_document,
    end_of_treatment_summaries,
    end_of_treatment_summary,
)
from engine.documents.render import (
    DocumentTooLargeError,
    DocumentUnprintableError,
    PdfBusyError,
    PdfLimits,
    PdfUnavailableError,
    render_html,
    render_pdf,
)
from engine.errors import Problem

from . import carepath
from .auth import current_principal, requires
from .errors import ApiError
from .headers import DOCUMENT_POLICY
from .parsing import json_body

__all__ = ["bp", "negotiated"]

bp = Blueprint("documents", __name__, url_prefix="/v1/instances")

Builder = Callable[[CarePath, str, str | None], dict[str, Any]]
_FORMATS = ["application/json", "text/html", "application/pdf"]  # the first wins a tie (*/*)


def negotiated(
    build: Builder, instance_id: str, name: str, shown: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> Response:
    """The document in the language and format asked for (``shown``: what of it the caller sees). Raises
    what ``build`` and the renderers raise."""
    document = build(carepath(), instance_id, request.accept_languages.best_match(LANGUAGES))
    if shown is not None:
        document = shown(document)
    chosen = request.accept_mimetypes.best_match(_FORMATS)
    if chosen == "text/html":
        response = Response(render_html(document), mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    elif chosen == "application/pdf":
        try:
            pdf = render_pdf(document, PdfLimits.of(carepath().settings))
        except DocumentTooLargeError as exc:  # refused before rendering: never a minute-long request
            raise ApiError(
                422,
                "document-too-large",
                f"{exc}; ask for application/json or text/html",
                [Problem(str(exc), field=exc.where)],
            ) from None
        except DocumentUnprintableError as exc:  # stopped at the PDF limits (time, memory): the server carries on
            raise ApiError(
                422,
                "document-unprintable",
                f"{exc}; ask for application/json or text/html",
                [Problem(str(exc), field="/")],
            ) from None
        except PdfBusyError as exc:  # every rendering slot of this worker taken for the request's time limit
            raise ApiError(503, "pdf-busy", f"{exc}; or ask for text/html", headers={"Retry-After": "5"}) from None
        except PdfUnavailableError:  # a server set up without Pango: its operator's gap, not a crash
            raise ApiError(
                503,
                "pdf-unavailable",
                "this server cannot make PDF documents; ask for text/html "
                "and print it, or ask the operator to install Pango (docs/operations.md)",
            ) from None
        response = Response(pdf, mimetype="application/pdf")
        # A file name for saving and attaching: the document and its date, never the patient's reference.
        day = document["generated_at"][:10]
        response.headers["Content-Disposition"] = f'inline; filename="{name}-{day}-{document["language"]}.pdf"'
    else:
        response = Response(json.dumps(document), mimetype="application/json")
    response.headers["Content-Language"] = document["language"]
    response.headers["Vary"] = "Accept, Accept-Language"
    return response


@bp.get("/<uuid:instance_id>/care-plan")
@requires("documents.read")
def care_plan(instance_id: Any) -> Response:
    return negotiated(care_plan_document, str(instance_id), "care-plan")


@bp.patch("/<uuid:instance_id>/care-plan/items/<uuid:item_id>")
@requires("care_plans.update")
def update_item(instance_id: Any, item_id: Any) -> dict[str, Any]:
    body = json_body("CarePlanItemUpdate")
    return carepath().care_plans.set_status(
        str(instance_id), str(item_id), body["status"], current_principal().actor, body.get("reason")
    )


@bp.get("/<uuid:instance_id>/end-of-treatment-summary")
@requires("documents.read")
def end_of_treatment(instance_id: Any) -> Response:
    return negotiated(end_of_treatment_summary, str(instance_id), "end-of-treatment-summary")


@bp.get("/<uuid:instance_id>/active-surveillance-plan")
@requires("documents.read")
def surveillance_plan(instance_id: Any) -> Response:
    return negotiated(active_surveillance_plan, str(instance_id), "active-surveillance-plan")


@bp.get("/<uuid:instance_id>/end-of-treatment-summaries")
@requires("documents.read")
def end_of_treatment_phases(instance_id: Any) -> Response:
    """The phases of care and the state of each one's summary (JSON), in the language asked for."""
    listed = end_of_treatment_summaries(carepath(), str(instance_id), request.accept_languages.best_match(LANGUAGES))
    response = Response(json.dumps(listed), mimetype="application/json")
    response.headers["Content-Language"] = listed["language"]
    response.headers["Vary"] = "Accept-Language"
    return response


@bp.get("/<uuid:instance_id>/end-of-treatment-summaries/<int(min=1, max=999):number>")
@requires("documents.read")
def end_of_treatment_phase(instance_id: Any, number: int) -> Response:
    build = functools.partial(end_of_treatment_summary, phase=number)
    return negotiated(build, str(instance_id), f"end-of-treatment-summary-{number}")
