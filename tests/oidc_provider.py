"""A tiny OpenID Connect provider for the tests, on a local port (no network): a discovery document, a
JWKS made from keys the tests create, an authorization endpoint that signs in whoever the test says,
and a token endpoint that checks the code, the redirect address and the PKCE verifier.

``FakeProvider.token(...)`` signs a token with the provider's current key (or any key and algorithm a
test asks for, to forge one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "carepath-api"
CLIENT_ID = "carepath-web"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    """The public half of ``key`` as a JWK named ``kid``."""
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


class FakeProvider:
    """The provider's state; :func:`serve` puts it on a port."""

    def __init__(self) -> None:
        self.issuer = ""  # set by serve(): http://127.0.0.1:<port>
        self.keys: dict[str, Any] = {"key-1": rsa_key()}
        self.kid = "key-1"  # the key tokens are signed with
        self.jwks_fetches = 0
        # In the development defaults' organisation and team (engine.settings.Settings.care_team_default).
        self.user: dict[str, Any] = {
            "sub": "7c1e",
            "preferred_username": "j.smith",
            "roles": ["clinician"],
            "carepath_organisation": "local",
            "carepath_teams": ["general"],
        }
        self.codes: dict[str, dict[str, Any]] = {}  # code -> what the authorization request asked for
        self.token_requests: list[dict[str, str]] = []
        self.now = datetime.min  # when ID tokens are issued: serve() sets it
        self.id_token_claims: dict[str, Any] = {}  # what the token endpoint's ID tokens say otherwise
        self.end_session = False  # whether the discovery document names an end_session_endpoint

    def rotate(self, kid: str, key: Any | None = None) -> None:
        """A new signing key, published beside the old one (as providers rotate)."""
        self.keys[kid] = key or rsa_key()
        self.kid = kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]}

    def token(
        self,
        now: datetime,
        *,
        audience: str = AUDIENCE,
        lifetime: int = 300,
        key: Any = None,
        kid: str | None = None,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        """A token for :attr:`user`, issued at ``now``; ``claims`` override (None removes a claim)."""
        at = int(now.timestamp())
        body = {"iss": self.issuer, "aud": audience, "iat": at, "nbf": at, "exp": at + lifetime, **self.user, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        kid = kid or self.kid
        signing_key = key if key is not None else self.keys[kid]
        return jwt.encode(body, signing_key, algorithm=algorithm, headers={"kid": kid})

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        } | ({"end_session_endpoint": f"{self.issuer}/logout"} if self.end_session else {})


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json(200, provider.metadata())
            elif url.path == "/jwks":
                provider.jwks_fetches += 1
                self._json(200, provider.jwks())
            elif url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                code = secrets.token_urlsafe(16)
                provider.codes[code] = query
                target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            provider.token_requests.append(form)
            asked = provider.codes.pop(form.get("code", ""), None)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
            if (
                asked is None
                or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != asked["redirect_uri"]
                or form.get("client_id") != CLIENT_ID
                or challenge.rstrip(b"=").decode() != asked["code_challenge"]
                or asked["code_challenge_method"] != "S256"
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            claims = {"audience": CLIENT_ID, "nonce": asked["nonce"], **provider.id_token_claims}
            id_token = provider.token(provider.now, **claims)
            self._json(200, {"id_token": id_token, "access_token": "opaque", "token_type": "Bearer"})

    return Handler


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _none_token(fake: FakeProvider, now: datetime) -> str:
    body = {"iss": fake.issuer, "aud": AUDIENCE, "exp": int(now.timestamp()) + 300, **fake.user}
    return jwt.encode(body, None, algorithm="none", headers={"kid": fake.kid})


def _hs256_with_public_key(fake: FakeProvider, now: datetime) -> str:
    """The classic forgery: HMAC keyed with the provider's public key, which anyone can fetch."""
    public = (
        fake.keys[fake.kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": fake.kid}).encode())
    body = {"iss": fake.issuer, "aud": AUDIENCE, "exp": int(now.timestamp()) + 300, **fake.user}
    payload = _b64(json.dumps(body).encode())
    signature = _b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def _tampered(fake: FakeProvider, now: datetime) -> str:
    """A clinician's token whose payload was changed to say author; the signature is the original's."""
    header, payload, signature = fake.token(now).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_b64(json.dumps({**body, 'roles': ['author']}).encode())}.{signature}"


# Tokens that must be refused, by the reason engine.identity logs (the part before a "-").
REFUSALS = (
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "unknown_key",
    "algorithm",
    "algorithm-hs256",
    "signature",
    "signature-other-key",
    "no_role",
    "no_role-unmapped",
    "several_roles",
    "no_staff_id",
    "missing_claim",
    "malformed",
    "malformed-exp",
)


def forged_tokens(fake: FakeProvider, now: datetime) -> dict[str, str]:
    """A token per case of :data:`REFUSALS`, as of ``now``."""
    minutes = timedelta(minutes=1)
    found = {
        "issuer": fake.token(now, iss="https://evil.example/realms/carepath"),
        "audience": fake.token(now, audience="another-api"),
        "expired": fake.token(now - 7 * minutes, lifetime=300),
        "not_yet_valid": fake.token(now, nbf=int((now + 5 * minutes).timestamp())),
        "unknown_key": fake.token(now, key=rsa_key(), kid="made-up"),
        "algorithm": _none_token(fake, now),
        "algorithm-hs256": _hs256_with_public_key(fake, now),
        "signature": _tampered(fake, now),
        "signature-other-key": fake.token(now, key=rsa_key()),
        "no_role": fake.token(now, roles=None),
        "no_role-unmapped": fake.token(now, roles=["nurse", "superuser"]),
        "several_roles": fake.token(now, roles=["clinician", "author"]),
        "no_staff_id": fake.token(now, sub=None, preferred_username=None),
        "missing_claim": fake.token(now, exp=None),
        "malformed": "bm90.anNvbg.c2ln",  # three parts, none of them JSON
        "malformed-exp": fake.token(now, exp="tomorrow"),
    }
    assert tuple(found) == REFUSALS
    return found


@contextmanager
def serve(provider: FakeProvider, now: datetime) -> Iterator[FakeProvider]:
    """Serve ``provider`` on a free local port for the block; ID tokens are issued at ``now``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    provider.now = now
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
