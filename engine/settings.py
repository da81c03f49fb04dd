"""Configuration as a small validated value object."""

from __future__ import annotations

import hashlib
import importlib.resources
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.calendar import add_working_days
from engine.files import FileRefusedError, read_regular_file

__all__ = [
    "DEFAULT_PDF_MEMORY_MB",
    "DEFAULT_PDF_TIMEOUT_SECONDS",
    "ENVIRONMENTS",
    "MAX_VERIFY_JOBS",
    "OIDC_ALGORITHMS",
    "PATIENT_IDENTIFIERS",
    "TIMEFRAME_UNITS",
    "OidcSettings",
    "ReferralTimeframes",
    "Settings",
    "bundled_pathways_dir",
    "bundled_rules_dir",
    "bundled_service_directory",
    "check_provider_url",
    "default_data_dir",
    "default_database_url",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
MIN_TRAIL_KEY_LENGTH = 32
# The service directory's sections: CAREPATH_HEALTH_SYSTEM and an instance's ``health_system`` name one.
HEALTH_SYSTEMS = ("england", "sweden")
ENVIRONMENTS = ("development", "production")
# How the FHIR API names patients (CAREPATH_FHIR_PATIENT_IDENTIFIER): the identifier system this
# deployment's patient references belong to (docs/fhir.md).
PATIENT_IDENTIFIERS = ("nhs-number", "personnummer")


# A secret named by a ``*_FILE`` setting (the OIDC client secret, the trail key): a few dozen bytes. The
# bound, with the regular-file check, keeps a setting that names a pipe or a device from hanging startup.
MAX_SECRET_FILE_BYTES = 64 * 1024


def read_secret_file(setting: str, path: Path) -> bytes:
    """The bytes of the secret file ``path`` named by ``setting``.

    Raises:
        ValueError: it cannot be read, is not a regular file, or is over :data:`MAX_SECRET_FILE_BYTES`; the
            message names the setting and the file, never the content.
    """
    try:
        return read_regular_file(path, MAX_SECRET_FILE_BYTES)
    except FileRefusedError as exc:
        cause = exc.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        raise ValueError(f"{setting} {path} cannot be read: {reason}") from None


def default_data_dir() -> Path:
    """Where CarePath keeps its data when no database is configured: ``$XDG_DATA_HOME/carepath``, else
    ``~/.local/share/carepath`` (the XDG base directory default). The same from every folder a command
    is run in, so ``carepath token create`` and ``carepath serve`` meet one database. Creates nothing."""
    base = os.environ.get("XDG_DATA_HOME", "")
    # The XDG specification: a relative XDG_DATA_HOME is invalid and ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "carepath"


def default_database_url() -> str:
    """SQLite in :func:`default_data_dir`: ``.../carepath/carepath.sqlite3`` (the embedded default)."""
    return f"sqlite:///{default_data_dir() / 'carepath.sqlite3'}"


def bundled_pathways_dir() -> Path:
    """The pathways shipped with CarePath (the package ``carepath_content.pathways``, see pyproject.toml).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.pathways")


def bundled_rules_dir() -> Path:
    """The rule sets and catalogues shipped with CarePath (the package ``carepath_content.rules``).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.rules")


def bundled_service_directory() -> Path:
    """The EXAMPLE service directory shipped with CarePath (``carepath_content.directory``): names and
    numbers that reach nobody, refused by a server in production mode (docs/documents.md).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.directory") / "service_directory.yaml"


def _package_folder(package: str) -> Path:
    try:
        folder = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"the bundled library ({package}) is not installed: install CarePath (in a checkout: pip install -e .)"
        ) from exc
    # Installed from a wheel or editable, the package is a folder on disk; the pathway library and
    # the rule registry read folders (a zipped install would need extracting first).
    if not isinstance(folder, Path):
        raise RuntimeError(f"the bundled library ({package}) is not a folder on disk: {folder}")
    return folder


# The signature algorithms an OpenID Connect token may use: asymmetric only. Never ``none``, and never an
# HMAC algorithm, which would let anyone holding the provider's public key sign tokens.
OIDC_ALGORITHMS = ("RS256", "ES256")
_CLAIM_PATH = re.compile(r"^[A-Za-z0-9_:-]{1,100}(\.[A-Za-z0-9_:-]{1,100}){0,4}$")
# An organisation or care team identifier (engine.care_teams.NAME_PATTERN, which may not be imported here).
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_provider_url(name: str, url: str) -> str:
    """An https URL; plain http only to this machine (a provider on localhost in development).

    Raises:
        ValueError: another scheme, no host, or http to another machine.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 500:
        raise ValueError(f"{name} must be an https URL")
    if parts.scheme == "http":
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{name} must be an https URL (plain http only to localhost)")
    return url


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through the organisation's OpenID Connect provider (docs/identity.md).

    ``issuer`` (``CAREPATH_OIDC_ISSUER``) and ``audience`` (``CAREPATH_OIDC_AUDIENCE``: the ``aud`` the
    provider puts in access tokens meant for CarePath's API) turn it on. The provider's keys come from
    ``jwks_url`` (``CAREPATH_OIDC_JWKS_URL``) or, without one, from the issuer's discovery document.

    ``role_claim`` (``CAREPATH_OIDC_ROLE_CLAIM``, default ``roles``; a dotted path such as
    ``realm_access.roles`` reaches into nested claims) holds the person's roles or groups, and
    ``role_map`` (``CAREPATH_OIDC_ROLE_MAP``: ``value=role,value=role`` or a JSON object) turns each
    value into a CarePath role; without a map a value that is a CarePath role's name is that role.
    ``staff_id_claim`` (``CAREPATH_OIDC_STAFF_ID_CLAIM``, default ``sub``) names the person in the trail.
    ``patient_claim`` (``CAREPATH_OIDC_PATIENT_CLAIM``, default none): a claim holding the patient reference
    of a patient signing in (a patient portal's provider puts it there); a token carrying it is a patient's.
    Without it, a patient's subject is linked to their reference with ``carepath patients link``.

    ``algorithms`` (``CAREPATH_OIDC_ALGORITHMS``): a subset of :data:`OIDC_ALGORITHMS`. ``leeway_seconds``
    (``CAREPATH_OIDC_LEEWAY_SECONDS``, 0-300, default 60): clock skew allowed on ``exp`` and ``nbf``.
    ``jwks_cache_seconds`` (``CAREPATH_OIDC_JWKS_CACHE_SECONDS``, 60-86400, default 3600): how long keys
    are used before they are fetched again; ``jwks_min_refetch_seconds``
    (``CAREPATH_OIDC_JWKS_MIN_REFETCH_SECONDS``, 1-3600, default 60): a token with an unknown key id
    fetches the keys again at most this often (an attacker's made-up key ids cannot flood the provider).

    The web app's sign-in (authorization code flow with PKCE) also needs ``client_id``
    (``CAREPATH_OIDC_CLIENT_ID``; the ID token's audience), and for a confidential client
    ``client_secret_file`` (``CAREPATH_OIDC_CLIENT_SECRET_FILE``). ``scopes`` (``CAREPATH_OIDC_SCOPES``,
    default ``openid profile``); ``redirect_url`` (``CAREPATH_OIDC_REDIRECT_URL``): the callback's public
    address when a proxy hides it (default: made from the request, ``/sign-in/callback``);
    ``post_logout_redirect_url`` (``CAREPATH_OIDC_POST_LOGOUT_REDIRECT_URL``): where the provider sends the
    browser back after signing out (default: made from the request, ``/sign-in``).

    Care teams (:mod:`engine.care_teams`, docs/access.md): ``organisation_claim``
    (``CAREPATH_OIDC_ORGANISATION_CLAIM``, default ``carepath_organisation``) names the person's
    organisation, or ``organisation`` (``CAREPATH_OIDC_ORGANISATION``) is every person's when the
    provider serves one organisation; ``teams_claim`` (``CAREPATH_OIDC_TEAMS_CLAIM``, default
    ``carepath_teams``; a list, or one string) names their care teams. A person without an
    organisation reaches no patient; a clinician without teams sees no patient.

    Raises:
        ValueError: a URL that is not https, an algorithm outside :data:`OIDC_ALGORITHMS`, a number out of
            range, a malformed claim name or role map.
    """

    issuer: str
    audience: str
    jwks_url: str | None = None
    role_claim: str = "roles"
    role_map: tuple[tuple[str, str], ...] = ()
    staff_id_claim: str = "sub"
    patient_claim: str | None = None
    algorithms: tuple[str, ...] = OIDC_ALGORITHMS
    leeway_seconds: int = 60
    jwks_cache_seconds: int = 3600
    jwks_min_refetch_seconds: int = 60
    client_id: str | None = None
    client_secret_file: Path | None = None
    scopes: str = "openid profile"
    redirect_url: str | None = None
    post_logout_redirect_url: str | None = None
    organisation_claim: str = "carepath_organisation"
    teams_claim: str = "carepath_teams"
    organisation: str | None = None

    def __post_init__(self) -> None:
        for name, url in (
            ("ISSUER", self.issuer),
            ("JWKS_URL", self.jwks_url),
            ("REDIRECT_URL", self.redirect_url),
            ("POST_LOGOUT_REDIRECT_URL", self.post_logout_redirect_url),
        ):
            if url is not None:
                check_provider_url(f"CAREPATH_OIDC_{name}", url)
        if not 0 < len(self.audience) <= 200:
            raise ValueError("CAREPATH_OIDC_AUDIENCE must be given (at most 200 characters)")
        if not self.algorithms or not set(self.algorithms) <= set(OIDC_ALGORITHMS):
            raise ValueError(f"CAREPATH_OIDC_ALGORITHMS must be some of {', '.join(OIDC_ALGORITHMS)}")
        if self.organisation is not None and not _IDENTIFIER.match(self.organisation):
            raise ValueError("CAREPATH_OIDC_ORGANISATION must be an identifier: 1-64 letters, digits or . _ -")
        for name, claim in (
            ("ROLE_CLAIM", self.role_claim),
            ("STAFF_ID_CLAIM", self.staff_id_claim),
            ("ORGANISATION_CLAIM", self.organisation_claim),
            ("TEAMS_CLAIM", self.teams_claim),
            ("PATIENT_CLAIM", self.patient_claim),
        ):
            if claim is not None and not _CLAIM_PATH.match(claim):
                raise ValueError(f"CAREPATH_OIDC_{name} must be a claim name (a dotted path for nested claims)")
        if any(not 0 < len(value) <= 200 or not role for value, role in self.role_map):
            raise ValueError("CAREPATH_OIDC_ROLE_MAP: each claim value needs a role, values of at most 200 characters")
        self._check_ranges()
        if self.client_id is not None and not 0 < len(self.client_id) <= 200:
            raise ValueError("CAREPATH_OIDC_CLIENT_ID must be at most 200 characters")
        if "openid" not in self.scopes.split():
            raise ValueError("CAREPATH_OIDC_SCOPES must include openid")
        if self.client_secret_file is not None:
            self.client_secret()  # configured but unreadable refuses every start

    def _check_ranges(self) -> None:
        for name, number, low, high in (
            ("LEEWAY_SECONDS", self.leeway_seconds, 0, 300),
            ("JWKS_CACHE_SECONDS", self.jwks_cache_seconds, 60, 86400),
            ("JWKS_MIN_REFETCH_SECONDS", self.jwks_min_refetch_seconds, 1, 3600),
        ):
            if not low <= number <= high:
                raise ValueError(f"CAREPATH_OIDC_{name} must be between {low} and {high}")

    @property
    def web_sign_in(self) -> bool:
        """Whether the web app signs people in through the provider (a client id is configured)."""
        return self.client_id is not None

    def client_secret(self) -> str | None:
        """The web client's secret, read from ``client_secret_file`` now (never kept on this object).

        Raises:
            ValueError: the file cannot be read or is empty.
        """
        if self.client_secret_file is None:
            return None
        try:
            secret = read_secret_file("CAREPATH_OIDC_CLIENT_SECRET_FILE", self.client_secret_file).decode().strip()
        except UnicodeDecodeError:
            raise ValueError(f"CAREPATH_OIDC_CLIENT_SECRET_FILE {self.client_secret_file} is not UTF-8 text") from None
        if not secret:
            raise ValueError(f"CAREPATH_OIDC_CLIENT_SECRET_FILE {self.client_secret_file} is empty")
        return secret

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        """The ``CAREPATH_OIDC_*`` variables, or None when ``CAREPATH_OIDC_ISSUER`` is not set.

        Raises:
            ValueError: as the constructor does, or a number or role map that cannot be read.
        """
        if not env.get("CAREPATH_OIDC_ISSUER"):
            return None
        found: dict[str, object] = {
            "issuer": env["CAREPATH_OIDC_ISSUER"].strip(),
            "audience": env.get("CAREPATH_OIDC_AUDIENCE", "").strip(),
        }
        for name in (
            "JWKS_URL",
            "ROLE_CLAIM",
            "STAFF_ID_CLAIM",
            "PATIENT_CLAIM",
            "CLIENT_ID",
            "SCOPES",
            "REDIRECT_URL",
            "POST_LOGOUT_REDIRECT_URL",
            "ORGANISATION_CLAIM",
            "TEAMS_CLAIM",
            "ORGANISATION",
        ):
            if env.get(f"CAREPATH_OIDC_{name}", "").strip():
                found[name.lower()] = env[f"CAREPATH_OIDC_{name}"].strip()
        for name in ("LEEWAY_SECONDS", "JWKS_CACHE_SECONDS", "JWKS_MIN_REFETCH_SECONDS"):
            if env.get(f"CAREPATH_OIDC_{name}", "").strip():
                try:
                    found[name.lower()] = int(env[f"CAREPATH_OIDC_{name}"])
                except ValueError as exc:
                    raise ValueError(f"CAREPATH_OIDC_{name} must be a whole number of seconds") from exc
        if env.get("CAREPATH_OIDC_ALGORITHMS", "").strip():
            found["algorithms"] = tuple(a.strip() for a in env["CAREPATH_OIDC_ALGORITHMS"].split(",") if a.strip())
        if env.get("CAREPATH_OIDC_ROLE_MAP", "").strip():
            found["role_map"] = _role_map(env["CAREPATH_OIDC_ROLE_MAP"].strip())
        if env.get("CAREPATH_OIDC_CLIENT_SECRET_FILE", "").strip():
            found["client_secret_file"] = Path(env["CAREPATH_OIDC_CLIENT_SECRET_FILE"].strip())
        return cls(**found)  # type: ignore[arg-type]


def _role_map(text: str) -> tuple[tuple[str, str], ...]:
    """``value=role,value=role`` or a JSON object of value -> role (for values with commas, e.g. LDAP names).

    Raises:
        ValueError: neither form.
    """
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except ValueError as exc:
            raise ValueError("CAREPATH_OIDC_ROLE_MAP is not a JSON object") from exc
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ValueError("CAREPATH_OIDC_ROLE_MAP must map claim values to role names")
        return tuple((str(k), v.strip()) for k, v in mapping.items())
    pairs = []
    for entry in text.split(","):
        value, equals, role = entry.strip().rpartition("=")
        if not equals or not value:
            raise ValueError("CAREPATH_OIDC_ROLE_MAP must be value=role pairs separated by commas")
        pairs.append((value, role.strip()))
    return tuple(pairs)


# How long a service has to accept a referral, per urgency: a number and a unit (docs/api.md, "Referral
# timeframes and escalations").
TIMEFRAME_UNITS = ("d", "wd", "w")  # calendar days, working days (Monday to Friday, not holidays), weeks
_TIMEFRAME = re.compile(r"^(\d{1,3})(wd|d|w)$")
_URGENCIES = ("emergency", "urgent", "soon", "routine")  # engine.rules.model.URGENCIES, most urgent first


@dataclass(frozen=True)
class ReferralTimeframes:
    """By when a service must accept a referral, per urgency, counted from the day it was referred
    (or its urgency raised); due at the end of that day in ``time_zone``.

    ``CAREPATH_REFERRAL_TIMEFRAMES``: ``urgency=N<unit>`` pairs, e.g. ``emergency=0d,urgent=2wd,soon=2w,
    routine=6w`` (the defaults: the same day, 2 working days, 2 weeks, 6 weeks); units ``d`` (calendar
    days), ``wd`` (working days) and ``w`` (weeks); an urgency left out keeps its default.
    ``CAREPATH_TIME_ZONE`` (an IANA name, default ``UTC``): where "the same day" ends.
    ``CAREPATH_HOLIDAYS``: dates ``YYYY-MM-DD`` separated by commas that are not working days.

    Raises:
        ValueError: an unknown urgency or unit, a count over 365, an unknown time zone, a bad date.
    """

    emergency: str = "0d"
    urgent: str = "2wd"
    soon: str = "2w"
    routine: str = "6w"
    time_zone: str = "UTC"
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        for urgency in _URGENCIES:
            match = _TIMEFRAME.match(getattr(self, urgency))
            if match is None or int(match.group(1)) > 365:
                raise ValueError(
                    f"CAREPATH_REFERRAL_TIMEFRAMES: {urgency} must be a number (at most 365) and a "
                    f"unit, one of {', '.join(TIMEFRAME_UNITS)} (e.g. 2wd)"
                )
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("CAREPATH_TIME_ZONE must be an IANA time zone name, e.g. Europe/London") from exc

    def of(self, urgency: str) -> tuple[int, str]:
        """The count and unit for ``urgency``; an unknown or missing urgency counts as routine."""
        match = _TIMEFRAME.match(getattr(self, urgency if urgency in _URGENCIES else "routine"))
        assert match is not None  # checked at construction
        return int(match.group(1)), match.group(2)

    @staticmethod
    def knows(urgency: str | None) -> bool:
        """Whether ``urgency`` has a timeframe of its own (:meth:`due` counts any other as routine)."""
        return urgency in _URGENCIES

    def due(self, referred_at: datetime, urgency: str | None) -> datetime:
        """By when a referral made at ``referred_at`` (aware) with ``urgency`` is due: the end of the last
        day of its timeframe in :attr:`time_zone` (aware, in ``referred_at``'s zone). The one deadline
        both escalation (engine.careplan) and the service measures (engine.reports) hold a referral to."""
        zone = ZoneInfo(self.time_zone)
        day = referred_at.astimezone(zone).date()
        count, unit = self.of(urgency or "routine")
        last = (
            add_working_days(day, count, self.holidays)
            if unit == "wd"
            else day + timedelta(days=count * (7 if unit == "w" else 1))
        )
        return datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(referred_at.tzinfo)

    def fingerprint(self) -> str:
        """A short text that changes whenever any deadline :meth:`due` gives could change: the summary
        the reports read (engine.reports.summary) is derived again when it differs."""
        holidays = ",".join(sorted(d.isoformat() for d in self.holidays))
        text = f"{self.emergency},{self.urgent},{self.soon},{self.routine};{self.time_zone};{holidays}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReferralTimeframes:
        """Raises: ValueError (as the constructor does, or a value that cannot be read)."""
        found: dict[str, object] = {}
        for pair in filter(None, (p.strip() for p in env.get("CAREPATH_REFERRAL_TIMEFRAMES", "").split(","))):
            urgency, equals, value = pair.partition("=")
            if not equals or urgency.strip() not in _URGENCIES:
                raise ValueError(
                    f"CAREPATH_REFERRAL_TIMEFRAMES must be urgency=timeframe pairs; urgencies: {', '.join(_URGENCIES)}"
                )
            found[urgency.strip()] = value.strip()
        if env.get("CAREPATH_TIME_ZONE", "").strip():
            found["time_zone"] = env["CAREPATH_TIME_ZONE"].strip()
        holidays = set()
        for text in filter(None, (d.strip() for d in env.get("CAREPATH_HOLIDAYS", "").split(","))):
            try:
                holidays.add(date.fromisoformat(text))
            except ValueError as exc:
                raise ValueError("CAREPATH_HOLIDAYS must be dates YYYY-MM-DD separated by commas") from exc
        found["holidays"] = frozenset(holidays)
        return cls(**found)  # type: ignore[arg-type]


def _four_eyes_setting(env: Mapping[str, str]) -> dict[str, object]:
    """``four_eyes`` from ``CAREPATH_FOUR_EYES`` (nothing when unset: on). Raises: ValueError (not on or off)."""
    value = env.get("CAREPATH_FOUR_EYES", "").strip().lower()
    if not value:
        return {}
    if value not in _TRUE + _FALSE:
        raise ValueError("CAREPATH_FOUR_EYES must be on or off")
    return {"four_eyes": value in _TRUE}


def _trail_settings(env: Mapping[str, str]) -> dict[str, object]:
    """``CAREPATH_TRAIL_KEY_FILE``, ``CAREPATH_CHECKPOINT_DIR``, ``CAREPATH_CHECKPOINT_SECONDS`` and
    ``CAREPATH_VERIFY_JOBS``.

    Raises:
        ValueError: CAREPATH_CHECKPOINT_SECONDS or CAREPATH_VERIFY_JOBS is not a number.
    """
    found: dict[str, object] = {}
    if env.get("CAREPATH_TRAIL_KEY_FILE"):
        found["trail_key_file"] = Path(env["CAREPATH_TRAIL_KEY_FILE"])
    if env.get("CAREPATH_CHECKPOINT_DIR"):
        found["checkpoint_dir"] = Path(env["CAREPATH_CHECKPOINT_DIR"])
    if env.get("CAREPATH_CHECKPOINT_SECONDS"):
        try:
            found["checkpoint_seconds"] = float(env["CAREPATH_CHECKPOINT_SECONDS"])
        except ValueError as exc:
            raise ValueError("CAREPATH_CHECKPOINT_SECONDS must be a number of seconds") from exc
    if env.get("CAREPATH_VERIFY_JOBS"):
        try:
            found["verify_jobs"] = int(env["CAREPATH_VERIFY_JOBS"])
        except ValueError as exc:
            raise ValueError("CAREPATH_VERIFY_JOBS must be a whole number of processes") from exc
    return found


def _psycopg_url(url: str) -> str:
    """psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_WEBHOOK_SETTINGS = {
    "CAREPATH_WEBHOOK_MAX_ATTEMPTS": ("webhook_max_attempts", int),
    "CAREPATH_WEBHOOK_TIMEOUT_SECONDS": ("webhook_timeout_seconds", float),
    "CAREPATH_WEBHOOK_FIRST_RETRY_SECONDS": ("webhook_first_retry_seconds", float),
    "CAREPATH_WEBHOOK_LONGEST_RETRY_SECONDS": ("webhook_longest_retry_seconds", float),
    # not a webhook's, but read the same way
    "CAREPATH_REPORT_MIN_COUNT": ("report_min_count", int),
    "CAREPATH_STATEMENT_TIMEOUT": ("statement_timeout", float),
    "CAREPATH_DATABASE_CONNECT_TIMEOUT": ("database_connect_timeout", float),
    "CAREPATH_PDF_TIMEOUT": ("pdf_timeout_seconds", float),
    "CAREPATH_PDF_MEMORY_MB": ("pdf_memory_mb", int),
}


def _webhook_settings(env: Mapping[str, str]) -> dict[str, object]:
    """``CAREPATH_WEBHOOK_MAX_ATTEMPTS`` and the ``..._SECONDS`` of the timeout and retries,
    ``CAREPATH_REPORT_MIN_COUNT``, ``CAREPATH_STATEMENT_TIMEOUT``, ``CAREPATH_DATABASE_CONNECT_TIMEOUT``,
    ``CAREPATH_PDF_TIMEOUT`` and ``CAREPATH_PDF_MEMORY_MB``.

    Raises:
        ValueError: a value that is not a number (of the right kind).
    """
    found: dict[str, object] = {}
    for variable, (name, kind) in _WEBHOOK_SETTINGS.items():
        if env.get(variable):
            try:
                found[name] = kind(env[variable])
            except ValueError as exc:
                raise ValueError(f"{variable} must be a {'whole ' if kind is int else ''}number") from exc
    return found


MAX_VERIFY_JOBS = 64  # processes one verification may start
# One PDF's rendering (engine.documents.render.PdfLimits): WeasyPrint's wall-clock seconds and its
# process's address space. The largest document the size caps let through (a 200-item care plan) took
# 8 s; a bundled document renders in under a second in ~300 MB of address space (the interpreter,
# WeasyPrint and Pango's threads).
DEFAULT_PDF_TIMEOUT_SECONDS = 20.0
DEFAULT_PDF_MEMORY_MB = 1024
MAX_PDF_TIMEOUT_SECONDS = 300.0
PDF_MEMORY_MB_RANGE = (384, 65536)


@dataclass(frozen=True)
class Settings:
    """Where CarePath finds its database, pathways and rules.

    ``allow_empty_library``: a server or worker starts even when the pathways or rules folder is
    missing or empty (a fresh deployment that will upload its pathways); otherwise it refuses
    (:func:`engine.library.require_library`).

    ``environment``: ``development`` or ``production``. In production a server refuses to start on an
    example ``service_directory`` (the numbers printed in patients' documents) unless
    ``allow_example_directory`` (:func:`engine.directory.require_service_directory`).
    ``health_system`` (``CAREPATH_HEALTH_SYSTEM``, ``england`` or ``sweden``): the directory section
    whose numbers this deployment's patients are given, whatever language they read in
    (:meth:`engine.directory.ServiceDirectory.for_patient`).

    ``trail_key_file`` (``CAREPATH_TRAIL_KEY_FILE``): a file holding the secret that authenticates
    the event trail (HMAC-SHA256, :mod:`engine.audit`), at least 32 characters -- e.g. the output
    of ``openssl rand -hex 32``, readable only by CarePath's user, kept out of the database and its
    backups. Without it events are hash-chained but not authenticated, and a server or worker
    warns at start (docs/operations.md says why it does not refuse). ``checkpoint_dir``
    (``CAREPATH_CHECKPOINT_DIR``): append-only storage outside the database where the worker writes
    a signed checkpoint of every instance's trail head every ``checkpoint_seconds``
    (``CAREPATH_CHECKPOINT_SECONDS``, default 3600). ``verify_jobs`` (``CAREPATH_VERIFY_JOBS``, default 1):
    how many processes a background verification of every trail runs in (:mod:`engine.verifications`).

    ``allow_concurrent_instances`` (``CAREPATH_ALLOW_CONCURRENT_INSTANCES``): a patient may have more
    than one running instance of the same pathway. By default a second start is refused (409 with the
    running instance's location), held by a unique index in the database; instances started while
    this is on are not counted by it.

    ``sandbox`` (``CAREPATH_SANDBOX``): the clock is the deployment's own, kept in the database, and
    an author may move it forward (:mod:`engine.sandbox`); a server refuses to start in this mode on
    a database holding patients that are not synthetic.

    ``fhir_patient_identifier``: the identifier system of this deployment's patient references, for
    the FHIR API: ``nhs-number`` (UK Core) or ``personnummer`` (Sweden).

    ``read_database_url`` (``CAREPATH_READ_DATABASE_URL``): a PostgreSQL streaming replica of the
    database, which the API's ``GET`` requests read once it has caught up with what their caller wrote
    (:mod:`engine.db.replica`); the worker, the command line and every write use the primary.

    ``four_eyes`` (``CAREPATH_FOUR_EYES``, on by default): a new pathway or rule-set version is deployed
    inactive and a second author activates it; moving running instances to another version is asked
    by one author and approved by another (:mod:`engine.four_eyes`). ``CAREPATH_FOUR_EYES=off`` lets a
    single developer work: every deploy is active at once and ``carepath migrate`` moves instances
    without an approval. Refused (ValueError) with ``CAREPATH_ENV=production``.
    ``report_min_count`` (``CAREPATH_REPORT_MIN_COUNT``, default 5): in every report (``engine.reports``)
    a count from 1 to this minus one is suppressed, so no patient can be singled out.

    ``statement_timeout`` (``CAREPATH_STATEMENT_TIMEOUT``, seconds, default 30; 0: none): on PostgreSQL,
    the longest one statement of an API request may run before the server cancels it, and (five
    seconds more) the longest the server may leave a request's round trip unanswered before the
    connection is closed; the request then answers 503 (:func:`engine.db.session.bounded_statements`).
    Only the server's requests are bounded: not the worker or the command line, whose long work (a
    verification, a migration, a bulk load) must not be cut. ``database_connect_timeout``
    (``CAREPATH_DATABASE_CONNECT_TIMEOUT``, seconds, default 10): the longest a new PostgreSQL
    connection, or the ping of one idle for a while, may take, for every process.

    ``pdf_timeout_seconds`` (``CAREPATH_PDF_TIMEOUT``, default 20, at most 300) and ``pdf_memory_mb``
    (``CAREPATH_PDF_MEMORY_MB``, default 1024, 384-65536): one PDF document's rendering, in a process of
    its own, is stopped after that many seconds or when its address space would pass that many
    megabytes (:class:`engine.documents.render.PdfLimits`); the document is then refused (422).

    ``oidc``: people sign in through an OpenID Connect provider (:class:`OidcSettings`, the
    ``CAREPATH_OIDC_*`` variables); None: API tokens only.

    ``default_organisation`` and ``default_care_team`` (``CAREPATH_DEFAULT_ORGANISATION``,
    ``CAREPATH_DEFAULT_CARE_TEAM``): where an instance started without them is placed
    (:mod:`engine.care_teams`). In development they default to ``local`` and ``general`` (the bundled
    demonstration, ``carepath serve``); in production a start must name them unless they are set.

    Raises:
        ValueError: for a database URL of an unsupported kind, a non-positive limit, an unknown environment
            or an unknown patient identifier system.
    """

    database_url: str = field(default_factory=default_database_url)
    pathways_dir: Path = field(default_factory=bundled_pathways_dir)
    rules_dir: Path = field(default_factory=bundled_rules_dir)
    allow_empty_library: bool = False
    # Safe-expression bounds (steps and seconds per evaluation).
    expression_max_steps: int = 10_000
    expression_max_seconds: float = 0.25
    environment: str = "development"
    service_directory: Path = field(default_factory=bundled_service_directory)
    allow_example_directory: bool = False
    # The health system of this deployment's patients (a section of the service directory): the numbers
    # their documents give. None: an instance's own ``health_system``, else the directory's only or first.
    health_system: str | None = None
    trail_key_file: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint_seconds: float = 3600.0
    verify_jobs: int = 1
    fhir_patient_identifier: str = PATIENT_IDENTIFIERS[0]
    read_database_url: str | None = None
    oidc: OidcSettings | None = None
    # Webhook delivery (engine.webhooks, docs/webhooks.md): attempts before a delivery is dead-lettered,
    # the HTTP timeout, and the first and longest wait between attempts (exponential, with jitter).
    webhook_max_attempts: int = 12
    webhook_timeout_seconds: float = 10.0
    webhook_first_retry_seconds: float = 30.0
    webhook_longest_retry_seconds: float = 6 * 3600.0
    # Receivers on private, loopback or link-local addresses (engine.webhooks.network): refused unless
    # the deployment's receivers sit on its own network (then its egress is the network's to limit).
    webhook_allow_private_networks: bool = False
    allow_concurrent_instances: bool = False
    sandbox: bool = False
    # By when a service must accept a referral, per urgency (engine.careplan.referrals).
    referral_timeframes: ReferralTimeframes = field(default_factory=ReferralTimeframes)
    default_organisation: str | None = None
    default_care_team: str | None = None
    four_eyes: bool = True
    # Reports (engine.reports, docs/measures.md): counts from 1 to this minus one are suppressed.
    report_min_count: int = 5
    # PostgreSQL: an API request's statements (seconds; 0: none) and any new connection (seconds).
    statement_timeout: float = 30.0
    database_connect_timeout: float = 10.0
    # One PDF document's rendering: wall-clock seconds and megabytes of its process's address space.
    pdf_timeout_seconds: float = DEFAULT_PDF_TIMEOUT_SECONDS
    pdf_memory_mb: int = DEFAULT_PDF_MEMORY_MB

    def __post_init__(self) -> None:
        self._check_finite()
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"unknown environment {self.environment!r}: expected {' or '.join(ENVIRONMENTS)}")
        if not self.four_eyes and self.environment == "production":
            raise ValueError(
                "CAREPATH_FOUR_EYES=off is for a single developer: production needs a second author "
                "to activate each version (docs/operations.md)"
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"unsupported database URL scheme: {self.database_url.split(':', 1)[0]}")
        if self.health_system is not None and self.health_system not in HEALTH_SYSTEMS:
            raise ValueError(f"CAREPATH_HEALTH_SYSTEM must be one of {', '.join(HEALTH_SYSTEMS)}")
        if self.expression_max_steps <= 0 or self.expression_max_seconds <= 0:
            raise ValueError("expression limits must be positive")
        if self.checkpoint_seconds <= 0:
            raise ValueError("CAREPATH_CHECKPOINT_SECONDS must be positive")
        if not 1 <= self.verify_jobs <= MAX_VERIFY_JOBS:
            raise ValueError(f"CAREPATH_VERIFY_JOBS must be between 1 and {MAX_VERIFY_JOBS}")
        if (
            self.webhook_max_attempts < 1
            or min(self.webhook_timeout_seconds, self.webhook_first_retry_seconds) <= 0
            or self.webhook_longest_retry_seconds < self.webhook_first_retry_seconds
        ):
            raise ValueError("CAREPATH_WEBHOOK_* settings must be positive, the longest retry at least the first")
        if self.statement_timeout < 0 or self.database_connect_timeout <= 0:
            raise ValueError(
                "CAREPATH_STATEMENT_TIMEOUT must be 0 (none) or more, CAREPATH_DATABASE_CONNECT_TIMEOUT positive"
            )
        self._check_pdf_limits()
        if self.trail_key_file is not None:
            self.trail_key()  # a key that is configured but unusable refuses every start
        if self.read_database_url is not None and not (
            self.read_database_url.startswith("postgresql") and self.database_url.startswith("postgresql")
        ):
            raise ValueError(
                "CAREPATH_READ_DATABASE_URL names a PostgreSQL streaming replica of a PostgreSQL "
                "CAREPATH_DATABASE_URL; SQLite has no replicas"
            )
        self._check_patients_and_reports()

    def _check_finite(self) -> None:
        """Every number of seconds is finite: each comparison with NaN is false, so it would pass the
        range checks of ``__post_init__``."""
        for name, value in (
            ("CAREPATH_CHECKPOINT_SECONDS", self.checkpoint_seconds),
            ("CAREPATH_WEBHOOK_TIMEOUT_SECONDS", self.webhook_timeout_seconds),
            ("CAREPATH_WEBHOOK_FIRST_RETRY_SECONDS", self.webhook_first_retry_seconds),
            ("CAREPATH_WEBHOOK_LONGEST_RETRY_SECONDS", self.webhook_longest_retry_seconds),
            ("CAREPATH_STATEMENT_TIMEOUT", self.statement_timeout),
            ("CAREPATH_DATABASE_CONNECT_TIMEOUT", self.database_connect_timeout),
            ("CAREPATH_PDF_TIMEOUT", self.pdf_timeout_seconds),
            ("the expression time limit", self.expression_max_seconds),
        ):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number of seconds")

    def _check_pdf_limits(self) -> None:
        """Raises: ValueError (a PDF time limit not above 0 or over 300 s, a memory limit out of range)."""
        if not 0 < self.pdf_timeout_seconds <= MAX_PDF_TIMEOUT_SECONDS:
            raise ValueError(
                f"CAREPATH_PDF_TIMEOUT must be more than 0 and at most {MAX_PDF_TIMEOUT_SECONDS:g} seconds"
            )
        low, high = PDF_MEMORY_MB_RANGE
        if not low <= self.pdf_memory_mb <= high:
            raise ValueError(f"CAREPATH_PDF_MEMORY_MB must be between {low} and {high}")

    def _check_patients_and_reports(self) -> None:
        """Raises: ValueError (an unknown patient identifier, a report threshold below 2, a default
        organisation or team that is not an identifier)."""
        if self.fhir_patient_identifier not in PATIENT_IDENTIFIERS:
            raise ValueError(f"CAREPATH_FHIR_PATIENT_IDENTIFIER must be one of {', '.join(PATIENT_IDENTIFIERS)}")
        if self.report_min_count < 2:
            raise ValueError("CAREPATH_REPORT_MIN_COUNT must be at least 2: a count of one singles a patient out")
        for name in ("default_organisation", "default_care_team"):
            value = getattr(self, name)
            if value is not None and not _IDENTIFIER.match(value):
                raise ValueError(f"CAREPATH_{name.upper()} must be an identifier: 1-64 letters, digits or . _ -")

    def care_team_default(self) -> tuple[str | None, str | None]:
        """The organisation and care team of an instance started without them (None: it must name them)."""
        if self.environment == "production":
            return self.default_organisation, self.default_care_team
        return self.default_organisation or "local", self.default_care_team or "general"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def trail_key(self) -> bytes | None:
        """The event trail's secret, read from ``trail_key_file`` now (never kept on this object, so
        it appears in no repr or traceback); None when no file is configured.

        Raises:
            ValueError: the file cannot be read or holds fewer than 32 characters.
        """
        if self.trail_key_file is None:
            return None
        secret = read_secret_file("CAREPATH_TRAIL_KEY_FILE", self.trail_key_file).strip()
        if len(secret) < MIN_TRAIL_KEY_LENGTH:
            raise ValueError(
                f"CAREPATH_TRAIL_KEY_FILE {self.trail_key_file} holds {len(secret)} characters; a trail "
                f"key needs at least {MIN_TRAIL_KEY_LENGTH} (openssl rand -hex 32)"
            )
        return secret

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``CAREPATH_DATABASE_URL``, ``CAREPATH_PATHWAYS_DIR``, ``CAREPATH_RULES_DIR``,
        ``CAREPATH_ALLOW_EMPTY_LIBRARY`` (1, true, yes or on), ``CAREPATH_ENV``,
        ``CAREPATH_SERVICE_DIRECTORY``, ``CAREPATH_ALLOW_EXAMPLE_DIRECTORY``, ``CAREPATH_HEALTH_SYSTEM``,
        ``CAREPATH_ALLOW_CONCURRENT_INSTANCES``, ``CAREPATH_SANDBOX``,
        ``CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` (1, true, yes or on),
        ``CAREPATH_FOUR_EYES`` (on by default; off: 0, false, no or off),
        ``CAREPATH_FHIR_PATIENT_IDENTIFIER``, ``CAREPATH_READ_DATABASE_URL``, ``CAREPATH_REPORT_MIN_COUNT``,
        ``CAREPATH_STATEMENT_TIMEOUT``, ``CAREPATH_DATABASE_CONNECT_TIMEOUT``,
        ``CAREPATH_PDF_TIMEOUT``, ``CAREPATH_PDF_MEMORY_MB``, ``CAREPATH_DEFAULT_ORGANISATION``,
        ``CAREPATH_DEFAULT_CARE_TEAM``, the ``CAREPATH_OIDC_*``
        variables (:meth:`OidcSettings.from_env`) and the referral timeframes'
        (:meth:`ReferralTimeframes.from_env`). Without a database URL: :func:`default_database_url`.

        Raises:
            ValueError: as the constructor does.
        """
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if env.get("CAREPATH_DATABASE_URL"):
            kwargs["database_url"] = _psycopg_url(env["CAREPATH_DATABASE_URL"])
        if env.get("CAREPATH_PATHWAYS_DIR"):
            kwargs["pathways_dir"] = Path(env["CAREPATH_PATHWAYS_DIR"])
        if env.get("CAREPATH_RULES_DIR"):
            kwargs["rules_dir"] = Path(env["CAREPATH_RULES_DIR"])
        if env.get("CAREPATH_ALLOW_EMPTY_LIBRARY", "").strip().lower() in _TRUE:
            kwargs["allow_empty_library"] = True
        if env.get("CAREPATH_ENV"):
            kwargs["environment"] = env["CAREPATH_ENV"].strip().lower()
        if env.get("CAREPATH_SERVICE_DIRECTORY"):
            kwargs["service_directory"] = Path(env["CAREPATH_SERVICE_DIRECTORY"])
        if env.get("CAREPATH_ALLOW_EXAMPLE_DIRECTORY", "").strip().lower() in _TRUE:
            kwargs["allow_example_directory"] = True
        for name in ("allow_concurrent_instances", "sandbox", "webhook_allow_private_networks"):
            if env.get(f"CAREPATH_{name.upper()}", "").strip().lower() in _TRUE:
                kwargs[name] = True
        kwargs.update(_four_eyes_setting(env))
        kwargs.update(_trail_settings(env))
        kwargs.update(_webhook_settings(env))
        if env.get("CAREPATH_FHIR_PATIENT_IDENTIFIER"):
            kwargs["fhir_patient_identifier"] = env["CAREPATH_FHIR_PATIENT_IDENTIFIER"].strip().lower()
        if env.get("CAREPATH_READ_DATABASE_URL"):
            kwargs["read_database_url"] = _psycopg_url(env["CAREPATH_READ_DATABASE_URL"])
        kwargs.update(_care_team_settings(env))
        kwargs["oidc"] = OidcSettings.from_env(env)
        kwargs["referral_timeframes"] = ReferralTimeframes.from_env(env)
        return cls(**kwargs)  # type: ignore[arg-type]


def _care_team_settings(env: Mapping[str, str]) -> dict[str, object]:
    """``CAREPATH_DEFAULT_ORGANISATION``, ``CAREPATH_DEFAULT_CARE_TEAM`` and ``CAREPATH_HEALTH_SYSTEM``
    (lower case), when set."""
    names = ("default_organisation", "default_care_team")
    found: dict[str, object] = {
        name: env[f"CAREPATH_{name.upper()}"].strip()
        for name in names
        if env.get(f"CAREPATH_{name.upper()}", "").strip()
    }
    if env.get("CAREPATH_HEALTH_SYSTEM", "").strip():
        found["health_system"] = env["CAREPATH_HEALTH_SYSTEM"].strip().lower()
    return found
