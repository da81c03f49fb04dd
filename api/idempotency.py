"""``Idempotency-Key`` on unsafe requests: a retry returns the first success and changes nothing twice.

The protocol and its guarantees are in :mod:`engine.idempotency`. Only successes (2xx) are kept:
a failed request changed nothing, so a retry with the same key (perhaps corrected, say with a new
If-Match) runs again. A replayed response carries ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, make_response, request

from engine.errors import Problem
from engine.idempotency import IdempotencyStore, StoredResponse, request_fingerprint

from .auth import current_principal
from .errors import ApiError

__all__ = ["idempotent"]

View = TypeVar("View", bound=Callable[..., Any])
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_KEPT_HEADERS = ("ETag", "Location")


def idempotent(view: View) -> View:
    """Wrap a view (inside :func:`api.auth.requires`) to honour ``Idempotency-Key``."""

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
            replay = Response(stored.body, status=stored.status, mimetype="application/json")
            replay.headers.update({**stored.headers, "Idempotent-Replayed": "true"})
            return replay
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            store.abandon(principal, key)
            raise
        if 200 <= response.status_code < 300:
            headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
            store.finish(principal, key, StoredResponse(response.status_code, headers, response.get_data(as_text=True)))
        else:
            store.abandon(principal, key)
        return response

    return cast(View, wrapper)
