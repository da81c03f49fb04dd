"""``Idempotency-Key`` on unsafe requests: a retry returns the first success and changes nothing twice.

The protocol and its guarantees are in :mod:`engine.idempotency`. Successes (2xx) are kept: a
failed request changed nothing, so a retry with the same key (perhaps corrected, say with a new
If-Match) runs again -- unless its use case did commit a change before failing, whose answer is then
kept too. A replayed response carries ``Idempotent-Replayed: true``.

The use case's commit marks the key committed in its own transaction. If the response cannot be
stored afterwards (the database went away a moment after the commit), the client still gets it, and
a retry is answered by the view's ``replay``: the same status, the resource it changed read as it is
now -- never the use case run a second time.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, make_response, request

from engine.db.session import database_unavailable
from engine.errors import IdempotencyKeyInUseError, Problem
from engine.idempotency import IdempotencyStore, StoredResponse, request_fingerprint

from .auth import current_principal
from .errors import ApiError

__all__ = ["idempotent"]

View = TypeVar("View", bound=Callable[..., Any])
# A view's answer from what its committed use case changed: (ids noted, the view's arguments) -> reply.
Replay = Callable[..., Any]
_log = logging.getLogger("carepath.idempotency")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_KEPT_HEADERS = ("ETag", "Location")


def idempotent(replay: Replay) -> Callable[[View], View]:
    """Wrap a view (inside :func:`api.auth.requires`) to honour ``Idempotency-Key``. ``replay(resources,
    **view_kwargs)`` answers a retry whose first attempt committed but whose response was not stored:
    ``resources`` are the ids its use case noted (:func:`engine.db.session.note_outcome`)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get("Idempotency-Key")
            if key is None:
                return view(*args, **kwargs)
            if not _KEY.match(key):
                raise ApiError(
                    400,
                    "request-invalid",
                    "Idempotency-Key must be 1-255 visible ASCII characters",
                    [Problem("1-255 visible ASCII characters", field="Idempotency-Key")],
                )
            carepath = current_app.extensions["carepath"]
            store = IdempotencyStore(carepath.sessions, carepath.clock)
            principal = current_principal().token_id
            stored = store.begin(principal, key, request_fingerprint(request.method, request.path, request.get_data()))
            if stored is not None:
                return _replayed(stored, replay, kwargs)
            try:
                with store.recording(principal, key):
                    response = make_response(view(*args, **kwargs))
            except BaseException:
                if not store.committed:  # nothing changed: a corrected retry may run
                    store.abandon(principal, key)
                raise
            if store.committed or 200 <= response.status_code < 300:
                headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
                _store(
                    store,
                    principal,
                    key,
                    StoredResponse(response.status_code, headers, response.get_data(as_text=True)),
                )
            else:
                store.abandon(principal, key)
            return response

        return cast(View, wrapper)

    return decorate


def _store(store: IdempotencyStore, principal: str, key: str, response: StoredResponse) -> None:
    """Store the response; when the use case committed and the database has gone meanwhile, the
    client gets its answer anyway (a retry is answered from what committed: ``replay``)."""
    try:
        store.finish(principal, key, response)
    except Exception as exc:
        if not (store.committed and database_unavailable(exc)):
            raise
        _log.warning("Idempotency-Key response not stored (%s): a retry is answered by replay", type(exc).__name__)


def _replayed(stored: StoredResponse, replay: Replay, kwargs: dict[str, Any]) -> Response:
    if stored.committed_only:
        if not stored.resources:  # pragma: no cover - every idempotent use case notes what it changed
            raise IdempotencyKeyInUseError(
                "the first request with this Idempotency-Key committed; its response is not available",
                [Problem("do not retry", field="Idempotency-Key")],
            )
        response = make_response(replay(stored.resources, **kwargs))
    else:
        response = Response(stored.body, status=stored.status, mimetype="application/json")
        response.headers.update(stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response
