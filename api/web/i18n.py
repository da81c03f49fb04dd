"""The pages' words in English and Swedish: one small locale file per language (``locales/<lang>.yaml``).

The language is the user's choice (kept in the session by the switch in the header), else the best
match of the browser's ``Accept-Language``, else English. Templates call ``t("section.key")``;
a key missing from a locale file is a programming error (``KeyError``), and a test holds both
files to the same keys.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from flask import current_app, g, request, session

__all__ = ["LANGUAGES", "current_language", "format_duration", "format_time", "strings", "translate", "translate_or"]

LANGUAGES = ("en", "sv")  # the first is the fallback


@functools.cache
def strings(language: str) -> dict[str, Any]:
    """The flattened strings of one language (``{"worklist.title": "..."}``)."""
    text = (importlib.resources.files(__package__) / "locales" / f"{language}.yaml").read_text(encoding="utf-8")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = value

    walk("", yaml.safe_load(text))
    return flat


def current_language() -> str:
    """The request's language: the user's choice, else the browser's, else English."""
    chosen = g.get("language")
    if chosen is None:
        chosen = session.get("language")
        if chosen not in LANGUAGES:
            chosen = request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]
        g.language = chosen
    return str(chosen)


def translate(key: str, **values: Any) -> str:
    """The string ``key`` in the request's language, with ``{name}`` fields filled in.

    Raises: KeyError for a key the locale file does not have.
    """
    text = str(strings(current_language())[key])
    return text.format(**values) if values else text


def translate_or(key: str, default: str) -> str:
    """The string ``key`` if the locale has it, else ``default`` (for open lists such as event types)."""
    found = strings(current_language()).get(key)
    return str(found) if found is not None else default


def format_time(value: str | datetime | None, with_time: bool = True) -> str:
    """A date (and time) the same way in both languages; a time in the deployment's time zone
    (``CAREPATH_TIME_ZONE``, where a referral's last day ends; default UTC), named by the zone's own
    abbreviation: 2026-01-15 09:00 UTC, or with Europe/London 2026-07-15 10:00 BST. A date alone is
    shown as it is (a due date is a day, not an instant)."""
    if value is None or value == "":
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not with_time:
        return when.strftime("%Y-%m-%d")
    local = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(_display_zone())  # stored in UTC
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or 'UTC'}"


def _display_zone() -> ZoneInfo:
    """The deployment's time zone (checked when the settings were read)."""
    return ZoneInfo(current_app.extensions["carepath"].settings.referral_timeframes.time_zone)


_DURATION = re.compile(r"P(?:([0-9]{1,4})D)?(?:T(?:([0-9]{1,4})H)?(?:([0-9]{1,4})M)?)?")


def format_duration(value: str) -> str | None:
    """An ISO 8601 duration of days, hours and minutes as words ("PT4H": "4 hours", "4 timmar"); None
    for any other text (it is then shown as it is)."""
    found = _DURATION.fullmatch(value)
    if found is None or not any(found.groups()) or value.endswith("T"):
        return None
    parts = []
    for unit, amount in zip(("day", "hour", "minute"), found.groups(), strict=True):
        if amount is not None:
            number = int(amount)
            parts.append(translate(f"duration.{unit}" if number == 1 else f"duration.{unit}s", n=number))
    return " ".join(parts)
