"""The first user of a new installation: ``carepath serve`` on a database with no API token yet creates
one (role clinician: the people the pages are mainly for; authors and auditors get theirs with
``carepath token create``) and prints a sign-in link with it, once."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import func, select

from engine import CarePath
from engine.access import ApiToken, create_token
from engine.db.session import unit_of_work

__all__ = ["FIRST_ROLE", "first_user_link"]

FIRST_ROLE = "clinician"


def first_user_link(engine: CarePath, base_url: str) -> str | None:
    """A sign-in link for a new clinician token when the database holds no token at all; else None.

    The token's secret is in the link: it is shown this once, like ``carepath token create`` shows it.
    """
    with unit_of_work(engine.sessions) as session:
        if session.scalar(select(func.count()).select_from(ApiToken)):
            return None
        _, secret = create_token(session, FIRST_ROLE, "first user (carepath serve)", engine.clock)
    return f"{base_url.rstrip('/')}/sign-in?token={quote(secret)}"
