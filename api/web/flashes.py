"""Messages shown once, on the next page ("Triage completed for ..."), carried there in the session cookie.

Flask's session cookie is signed, not encrypted: whoever holds it (a shared computer's browser profile, a
proxy that logs cookies) can read what it carries. So a message holds no patient data: the key of its
words in the locale files, the pathway's own words (a task's name) and at most the instance's id, an
opaque UUID. The patient's reference is looked up when the next page is drawn, under the reader's scope,
and the words are chosen then, in the language of that page.
"""

from __future__ import annotations

import json
from typing import Any

from flask import flash, g, get_flashed_messages

from engine.errors import NotFoundError

from .. import carepath
from ..scope import visible_instance
from .auth import principal
from .i18n import translate

_CATEGORY = "carepath"


def tell(key: str, *, instance_id: str | None = None, **values: str) -> None:
    """Show the locale's ``key`` on the next page, with ``values`` (never patient data) filled in, and the
    patient of ``instance_id`` as ``{patient}``."""
    flash(json.dumps({"key": key, "instance": instance_id, "values": values}), _CATEGORY)


def flashed() -> list[str]:
    """The messages for this page, in its language; each is taken once (a second call gives the same)."""
    if "flashed" not in g:
        g.flashed = [_words(str(message)) for message in get_flashed_messages(category_filter=[_CATEGORY])]
    return [words for words in g.flashed if words]


def _words(message: str) -> str:
    try:
        found: Any = json.loads(message)
        key, instance_id, values = str(found["key"]), found.get("instance"), dict(found["values"])
        if instance_id is not None:
            values["patient"] = _patient_ref(str(instance_id))
        return translate(key, **values)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return ""  # not one of ours (a cookie signed before this format): nothing to show


def _patient_ref(instance_id: str) -> str:
    """The patient's reference when the reader may see the instance, else words that name nobody."""
    user = principal()
    visible = visible_instance(user, instance_id) if user is not None else ""
    if visible:
        try:
            return carepath().instances.get(visible).patient_ref
        except NotFoundError:  # gone since (deleted): the message still shows, naming nobody
            pass
    return translate("layout.this_patient")
