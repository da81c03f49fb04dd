"""Who a person is: OpenID Connect tokens checked against the provider's published keys.

People sign in at the organisation's identity provider (Keycloak, Microsoft Entra ID, ...); CarePath
never sees a password. The API accepts the provider's access tokens as bearer tokens, the web app
signs people in with the authorization code flow (PKCE, state and nonce) and checks the ID token it
gets back. Both end in :meth:`Provider.principal`: a token is a :class:`~engine.access.Principal`
only when

* it is a JWS signed with an allowed asymmetric algorithm (``OidcSettings.algorithms``: RS256,
  ES256; never ``none``, never HMAC) by a key of the provider's JWKS whose type fits the algorithm;
* ``iss`` is the configured issuer and ``aud`` holds the expected audience (the API's audience for
  access tokens, the web client's id for ID tokens);
* ``exp`` has not passed and ``nbf`` has (by the engine's clock, with a small leeway);
* the role claim maps to exactly one CarePath role, and the staff id claim names the person; the
  organisation and teams claims, when present, hold identifiers (``engine.care_teams``); or
* the person is a patient: their subject is linked to a patient reference (``carepath patients link``,
  looked up through the injected ``patients`` function, :func:`engine.patients.linked_patient`), or the
  token carries the configured patient claim (``OidcSettings.patient_claim``). The principal then has
  role ``patient`` and that reference. A patient's token whose role claim also maps to a staff role,
  whose link and claim disagree, or whose role maps to ``patient`` with neither, is refused.

A refused token raises :class:`~engine.errors.InvalidTokenError` with one message whatever the
reason: the caller learns nothing about which check failed. The reason (a word such as ``audience``
or ``expired``, never a claim's value) is logged on ``carepath.identity`` for the operator.

Keys are fetched from the provider (its discovery document's ``jwks_uri``, or a configured URL),
kept for ``jwks_cache_seconds``, and fetched again early when a token names an unknown key id (the
provider rotated its keys) -- at most once per ``jwks_min_refetch_seconds``. Every fetch has a
timeout and a size bound; the fetcher is injected, so tests serve their own provider.

May import: ``access`` (the principal, the roles), ``care_teams`` (what an organisation or team
identifier is), and the shared ``settings``, ``clock``, ``errors``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard
from urllib.parse import urlencode

import jwt

from engine.access import PATIENT_REF_PATTERN, PATIENT_ROLE, ROLES, Principal, person_id
from engine.care_teams import MAX_TEAMS, NAME_PATTERN
from engine.clock import Clock
from engine.errors import InvalidTokenError
from engine.settings import OidcSettings, check_provider_url

__all__ = [
    "Fetch",
    "PatientLookup",
    "Post",
    "Provider",
    "ProviderUnavailableError",
    "get_json",
    "pkce_challenge",
    "post_form",
]

log = logging.getLogger("carepath.identity")

REFUSED = "the bearer token is not valid"
MAX_TOKEN_CHARS = 16_384
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_KEYS = 50
MAX_ROLE_VALUES = 200
TIMEOUT_SECONDS = 5.0
MIN_RSA_BITS = 2048
_STAFF_ID = re.compile(r"^[A-Za-z0-9._@+:/-]{1,120}$")
_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
_CARE_NAME = re.compile(NAME_PATTERN)
# The key type (and curve) each allowed algorithm must be used with.
_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}


class ProviderUnavailableError(Exception):
    """Raised when the provider cannot be reached or answers with something that is not what OpenID
    Connect promises (no CarePath caller input is at fault: the web app says sign-in is unavailable)."""


Fetch = Callable[[str], dict[str, Any]]  # GET a URL, a JSON object back
Post = Callable[[str, Mapping[str, str]], dict[str, Any]]  # POST a form, a JSON object back
PatientLookup = Callable[[str, str], str | None]  # (issuer, subject) -> the linked patient reference, or None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: it could lead from https to plain http, past :func:`_checked_url`."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _read_json(request: urllib.request.Request) -> dict[str, Any]:
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        raise ProviderUnavailableError(f"the provider answered {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ProviderUnavailableError(f"the provider cannot be reached ({type(exc).__name__})") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ProviderUnavailableError("the provider's answer is too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ProviderUnavailableError("the provider's answer is not JSON") from None
    if not isinstance(document, dict):
        raise ProviderUnavailableError("the provider's answer is not a JSON object")
    return document


def _checked_url(url: object) -> str:
    """An https address (plain http only to this machine), as the settings' own addresses must be."""
    try:
        return check_provider_url("the provider's address", url if isinstance(url, str) else "")
    except ValueError as exc:
        raise ProviderUnavailableError(str(exc)) from None


def get_json(url: str) -> dict[str, Any]:
    """GET ``url``; the JSON object it answers (5 s timeout, 512 KB at most).

    Raises:
        ProviderUnavailableError: unreachable, an HTTP error, too large, or not a JSON object.
    """
    return _read_json(urllib.request.Request(_checked_url(url), headers={"Accept": "application/json"}))


def post_form(url: str, form: Mapping[str, str]) -> dict[str, Any]:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``url``; the JSON object it answers.

    Raises:
        ProviderUnavailableError: as :func:`get_json`.
    """
    data = urlencode(dict(form)).encode("ascii")
    return _read_json(
        urllib.request.Request(
            _checked_url(url),
            data=data,
            method="POST",
            headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
        )
    )


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _Refused(Exception):
    """A token failed a check; ``reason`` is a word for the operator's log (never a claim's value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _KeySet:
    """The provider's signing keys by key id, fetched again when old or when an unknown id is asked for."""

    def __init__(
        self, settings: OidcSettings, url: Callable[[], str], fetch: Fetch, monotonic: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._url = url
        self._fetch = fetch
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``, or None.

        Raises:
            ProviderUnavailableError: the keys are due to be fetched and cannot be.
        """
        with self._lock:
            now = self._monotonic()
            if self._keys is None or now - self._fetched_at >= self._settings.jwks_cache_seconds:
                self._keys = None  # a bounded lifetime: old keys are not used past it, even if the fetch fails
                self._refresh(now)
            elif kid not in self._keys and now - self._fetched_at >= self._settings.jwks_min_refetch_seconds:
                self._refresh(now)
            assert self._keys is not None
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        document = self._fetch(self._url())
        entries = document.get("keys")
        if not isinstance(entries, list) or len(entries) > MAX_KEYS:
            raise ProviderUnavailableError(f"the JWKS must hold a list of at most {MAX_KEYS} keys")
        keys = {}
        for entry in entries:
            found = self._usable(entry)
            if found is not None:
                keys[entry["kid"]] = found
        self._keys = keys
        self._fetched_at = now
        log.info("fetched %d signing key(s) from the identity provider", len(keys))

    def _usable(self, entry: object) -> jwt.PyJWK | None:
        """A signing key of a type an allowed algorithm uses; None for anything else (skipped)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not 0 < len(entry["kid"]) <= 200:
            return None
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            return None
        if "alg" in entry and entry["alg"] not in self._settings.algorithms:
            return None
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            log.warning("the identity provider published a key CarePath cannot use; it is skipped")
            return None
        if entry["kty"] == "RSA" and getattr(key.key, "key_size", 0) < MIN_RSA_BITS:
            return None
        return key


class Provider:
    """One OpenID Connect provider: its metadata, its keys, and the checks of its tokens.

    ``fetch`` and ``post`` reach the provider (:func:`get_json`, :func:`post_form` by default);
    ``monotonic`` times the caches (``time.monotonic``); ``clock`` judges ``exp`` and ``nbf``; ``patients``
    finds the patient a subject is linked to (None: patients are known by the patient claim only).

    Raises:
        ValueError: the role map names a role CarePath does not have.
    """

    def __init__(
        self,
        settings: OidcSettings,
        clock: Clock,
        fetch: Fetch = get_json,
        post: Post = post_form,
        monotonic: Callable[[], float] = time.monotonic,
        patients: PatientLookup | None = None,
    ) -> None:
        unknown = sorted({role for _, role in settings.role_map} - set(ROLES))
        if unknown:
            raise ValueError(
                f"CAREPATH_OIDC_ROLE_MAP names unknown role(s) {', '.join(unknown)}: "
                f"CarePath's roles are {', '.join(ROLES)}"
            )
        self.settings = settings
        self._clock = clock
        self._fetch = fetch
        self._post = post
        self._monotonic = monotonic
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._lock = threading.Lock()
        self._keys = _KeySet(settings, self._jwks_url, fetch, monotonic)
        self._role_map = dict(settings.role_map) if settings.role_map else {role: role for role in ROLES}
        self._patients = patients

    # -- the provider's metadata -------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (``/.well-known/openid-configuration``), cached like the keys.

        Raises:
            ProviderUnavailableError: unreachable, or it names another issuer.
        """
        with self._lock:
            now = self._monotonic()
            if self._metadata is None or now - self._metadata_at >= self.settings.jwks_cache_seconds:
                document = self._fetch(self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration")
                # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it came from.
                if document.get("issuer") != self.settings.issuer:
                    raise ProviderUnavailableError("the discovery document names another issuer")
                self._metadata, self._metadata_at = document, now
            return self._metadata

    def _endpoint(self, name: str) -> str:
        return _checked_url(self.metadata().get(name))

    def _jwks_url(self) -> str:
        return self.settings.jwks_url or self._endpoint("jwks_uri")

    # -- tokens --------------------------------------------------------------------------------------

    def principal(self, token: str, *, audience: str | None = None, nonce: str | None = None) -> Principal:
        """The person ``token`` names, when every check of the module docstring holds. ``audience``:
        what ``aud`` must hold (default: the API's ``OidcSettings.audience``); ``nonce``: the value an
        ID token must carry (the web sign-in's).

        Raises:
            InvalidTokenError: the token is refused (the reason is logged, not told).
        """
        try:
            claims = self._claims(token, audience or self.settings.audience)
            if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
                raise _Refused("nonce")
            patient_ref = self._patient_ref(claims)
            if patient_ref is not None:
                return self._patient(claims, patient_ref)
            role = self._role(claims)
            if role == PATIENT_ROLE:
                raise _Refused("no_patient_ref")  # a patient whose subject is not linked to a patient reference
            staff_id = self._staff_id(claims)
            organisation, teams = self._care_teams(claims)
        except _Refused as refused:
            log.info("OpenID Connect token refused: %s", refused.reason)
            raise InvalidTokenError(REFUSED) from None
        except ProviderUnavailableError as exc:
            log.warning("OpenID Connect token refused: keys_unavailable (%s)", exc)
            raise InvalidTokenError(REFUSED) from None
        # A stable id per person, short enough for the columns that hold a caller's id (Idempotency-Keys).
        return Principal(
            role=role,
            token_id=person_id(self.settings.issuer, staff_id),
            label=staff_id,
            staff_id=staff_id,
            organisation=organisation,
            teams=teams,
        )

    def _claims(self, token: str, audience: str) -> dict[str, Any]:
        if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii() or token.count(".") != 2:
            raise _Refused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Refused("malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.settings.algorithms:
            raise _Refused("algorithm")
        if not isinstance(kid, str) or not 0 < len(kid) <= 200:
            raise _Refused("no_key_id")
        key = self._keys.key(kid)
        if key is None:
            raise _Refused("unknown_key")
        kty, curve = _KEY_TYPES[algorithm]
        if key.key_type != kty or (curve is not None and getattr(key.key.curve, "name", "") != _curve_name(curve)):
            raise _Refused("algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=audience,
                issuer=self.settings.issuer,
                # Time is judged below by the engine's clock, not the library's.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _Refused("signature") from None
        except jwt.InvalidAudienceError:
            raise _Refused("audience") from None
        except jwt.InvalidIssuerError:
            raise _Refused("issuer") from None
        except jwt.MissingRequiredClaimError:
            raise _Refused("missing_claim") from None
        except jwt.PyJWTError:
            raise _Refused("malformed") from None
        self._check_time(claims)
        return claims

    def _check_time(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        leeway = self.settings.leeway_seconds
        expires, not_before = claims.get("exp"), claims.get("nbf", now)
        if not _is_number(expires) or not _is_number(not_before):
            raise _Refused("malformed")
        if now >= expires + leeway:
            raise _Refused("expired")
        if now + leeway < not_before:
            raise _Refused("not_yet_valid")

    def _patient_ref(self, claims: Mapping[str, Any]) -> str | None:
        """The patient reference the subject is linked to, or the patient claim holds; None for staff."""
        subject = claims.get("sub")
        linked = None
        if self._patients is not None and isinstance(subject, str) and 0 < len(subject) <= 255:
            linked = self._patients(self.settings.issuer, subject)
        claimed = _claim(claims, self.settings.patient_claim) if self.settings.patient_claim else None
        if claimed is not None and (not isinstance(claimed, str) or not _PATIENT_REF.match(claimed)):
            raise _Refused("malformed_patient_ref")
        if linked is not None and claimed is not None and linked != claimed:
            raise _Refused("patient_mismatch")
        return linked or claimed

    def _patient(self, claims: Mapping[str, Any], patient_ref: str) -> Principal:
        """A patient's principal: no staff role besides (one role per sign-in), a subject to name them by."""
        if self._roles(claims) - {PATIENT_ROLE}:
            raise _Refused("several_roles")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise _Refused("no_subject")
        # The trail names a patient by this id, never by their patient reference (patient:oidc_...).
        return Principal(
            role=PATIENT_ROLE,
            token_id=person_id(self.settings.issuer, subject),
            label=PATIENT_ROLE,
            patient_ref=patient_ref,
        )

    def _roles(self, claims: Mapping[str, Any]) -> set[str]:
        """The CarePath roles the role claim maps to (none when the claim is missing)."""
        values = _claim(claims, self.settings.role_claim)
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or len(values) > MAX_ROLE_VALUES:
            return set()
        return {self._role_map[v] for v in values if isinstance(v, str) and v in self._role_map}

    def _role(self, claims: Mapping[str, Any]) -> str:
        roles = self._roles(claims)
        if not roles:
            raise _Refused("no_role")
        if len(roles) > 1:
            # One role per sign-in keeps duties apart (an author is not their own auditor).
            raise _Refused("several_roles")
        return roles.pop()

    def _care_teams(self, claims: Mapping[str, Any]) -> tuple[str, frozenset[str]]:
        """The person's organisation and care teams (engine.care_teams). A person is always scoped: no
        organisation is ``""``, which no instance has (they reach nothing); no teams claim is no team (a
        clinician sees no patient). A value that is not an identifier is refused, not ignored."""
        value = _claim(claims, self.settings.organisation_claim)
        if value is None:
            value = self.settings.organisation or ""
        if not isinstance(value, str) or (value and not _CARE_NAME.match(value)):
            raise _Refused("organisation")
        found = _claim(claims, self.settings.teams_claim)
        teams = [found] if isinstance(found, str) else [] if found is None else found
        if (
            not isinstance(teams, list)
            or len(teams) > MAX_TEAMS
            or not all(isinstance(t, str) and _CARE_NAME.match(t) for t in teams)
        ):
            raise _Refused("teams")
        return value, frozenset(teams)

    def _staff_id(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(self.settings.staff_id_claim)
        if not isinstance(value, str) or not _STAFF_ID.match(value):
            raise _Refused("no_staff_id")
        return value

    # -- the web app's authorization code flow ------------------------------------------------------

    def authorization_url(self, redirect_url: str, state: str, nonce: str, verifier: str) -> str:
        """Where to send a browser to sign in: the provider's authorization endpoint with the code flow's
        parameters (PKCE S256 challenge of ``verifier``).

        Raises:
            ProviderUnavailableError: no discovery document, or no client id configured.
        """
        if self.settings.client_id is None:
            raise ProviderUnavailableError("no CAREPATH_OIDC_CLIENT_ID: the web app does not sign in here")
        endpoint = self._endpoint("authorization_endpoint")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_url,
                "scope": self.settings.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return endpoint + ("&" if "?" in endpoint else "?") + query

    def sign_out_url(self, post_logout_redirect_url: str) -> str | None:
        """Where to send a browser signing out so that its session at the provider ends too (OpenID
        Connect RP-Initiated Logout 1.0: the discovery document's ``end_session_endpoint`` with
        ``client_id`` and ``post_logout_redirect_uri``), or None when the provider names no such endpoint.

        No ``id_token_hint``: keeping the ID token would put the person's claims in the session cookie, which
        is signed, not encrypted. Without it some providers (Keycloak) ask the person to confirm.

        Raises:
            ProviderUnavailableError: the discovery document cannot be read, or its endpoint is not https.
        """
        if self.settings.client_id is None or self.metadata().get("end_session_endpoint") is None:
            return None
        endpoint = self._endpoint("end_session_endpoint")
        query = urlencode({"client_id": self.settings.client_id, "post_logout_redirect_uri": post_logout_redirect_url})
        return endpoint + ("&" if "?" in endpoint else "?") + query

    def sign_in(self, code: str, redirect_url: str, verifier: str, nonce: str) -> Principal:
        """Exchange an authorization ``code`` at the token endpoint and check the ID token it returns
        (audience: the client id; ``nonce``: the one sent).

        Raises:
            ProviderUnavailableError: the token endpoint cannot be reached, or answers without an ID token.
            InvalidTokenError: the ID token is refused.
        """
        if self.settings.client_id is None:
            raise ProviderUnavailableError("no CAREPATH_OIDC_CLIENT_ID: the web app does not sign in here")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_url,
            "client_id": self.settings.client_id,
            "code_verifier": verifier,
        }
        secret = self.settings.client_secret()
        if secret is not None:
            form["client_secret"] = secret  # client_secret_post: Keycloak and Entra ID both accept it
        answer = self._post(self._endpoint("token_endpoint"), form)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderUnavailableError("the token endpoint answered without an ID token")
        return self.principal(id_token, audience=self.settings.client_id, nonce=nonce)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``realm_access.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _curve_name(jwk_curve: str) -> str:
    """The cryptography library's name of a JWK curve."""
    return {"P-256": "secp256r1"}[jwk_curve]
