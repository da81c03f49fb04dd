"""OpenID Connect tokens (issue 18, point 1): each check of engine.identity, against a provider the test
serves on a local port with keys it makes. Every refusal is asserted by the reason the operator's log
gives, so a token refused for some other reason than the one under test fails the test."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from oidc_provider import AUDIENCE, REFUSALS, FakeProvider, forged_tokens, rsa_key, serve

from engine import ManualClock
from engine.errors import InvalidTokenError
from engine.identity import REFUSED, Provider
from engine.settings import OidcSettings, Settings

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with serve(FakeProvider(), NOW) as provider:
        yield provider


class Monotonic:
    """The caches' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider_for(fake: FakeProvider, monotonic: Monotonic | None = None, **settings: Any) -> Provider:
    oidc = OidcSettings(issuer=fake.issuer, audience=AUDIENCE, **settings)
    return Provider(oidc, ManualClock(NOW), monotonic=monotonic or Monotonic())


def refusal(provider: Provider, token: str, caplog: pytest.LogCaptureFixture, **kwargs: Any) -> str:
    """The reason ``token`` is refused (from the log), after checking the error tells nothing of it."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="carepath.identity"), pytest.raises(InvalidTokenError) as raised:
        provider.principal(token, **kwargs)
    assert raised.value.message == REFUSED and raised.value.problems == []
    reasons = [r.getMessage().split(": ", 1)[1] for r in caplog.records if "token refused" in r.getMessage()]
    assert len(reasons) == 1, caplog.records
    return reasons[0]


def test_a_valid_token_names_the_person_and_their_role(fake: FakeProvider) -> None:
    principal = provider_for(fake, staff_id_claim="preferred_username").principal(fake.token(NOW))
    assert (principal.role, principal.staff_id, principal.actor) == ("clinician", "j.smith", "clinician:staff:j.smith")
    assert principal.token_id.startswith("oidc_") and len(principal.token_id) <= 40
    # The same person gets the same id (it scopes their Idempotency-Keys); the default staff id is `sub`.
    again = provider_for(fake).principal(fake.token(NOW + timedelta(seconds=5)))
    assert again.staff_id == "7c1e" and again.actor == "clinician:staff:7c1e"


def test_an_es256_key_is_accepted(fake: FakeProvider) -> None:
    fake.rotate("ec-1", ec.generate_private_key(ec.SECP256R1()))
    assert provider_for(fake).principal(fake.token(NOW, algorithm="ES256")).role == "clinician"


@pytest.mark.parametrize("case", REFUSALS)
def test_tokens_that_are_refused(fake: FakeProvider, caplog: pytest.LogCaptureFixture, case: str) -> None:
    token = forged_tokens(fake, NOW)[case]
    assert refusal(provider_for(fake), token, caplog) == case.split("-")[0]


def test_a_key_of_the_wrong_type_for_the_algorithm_is_refused(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """ES256 named in the header, an RSA key named by the key id."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = fake.token(NOW, key=ec_key, algorithm="ES256")  # kid is the RSA key's
    assert refusal(provider_for(fake), token, caplog) == "algorithm"


def test_expiry_and_not_before_allow_the_configured_leeway(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    just_expired = fake.token(NOW - timedelta(seconds=330), lifetime=300)  # expired 30 s ago
    early = fake.token(NOW, nbf=int((NOW + timedelta(seconds=30)).timestamp()))
    provider = provider_for(fake)  # leeway 60 s
    assert provider.principal(just_expired).role == provider.principal(early).role == "clinician"
    strict = provider_for(fake, leeway_seconds=0)
    assert refusal(strict, just_expired, caplog) == "expired"
    assert refusal(strict, early, caplog) == "not_yet_valid"


def test_the_engine_clock_decides_expiry(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(NOW)
    provider = Provider(OidcSettings(issuer=fake.issuer, audience=AUDIENCE, leeway_seconds=0), clock)
    token = fake.token(NOW, lifetime=300)
    assert provider.principal(token).role == "clinician"
    clock.advance(timedelta(seconds=300))
    assert refusal(provider, token, caplog) == "expired"


def test_a_nested_role_claim_and_a_role_map(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    """Keycloak puts realm roles in realm_access.roles; the map turns its names into CarePath's."""
    fake.user = {"sub": "u-1", "realm_access": {"roles": ["offline_access", "carepath-author"]}}
    provider = provider_for(
        fake, role_claim="realm_access.roles", role_map=(("carepath-author", "author"), ("carepath-auditor", "auditor"))
    )
    assert provider.principal(fake.token(NOW)).role == "author"
    # With a map, a role's bare name means nothing: only the mapped values count.
    assert refusal(provider, fake.token(NOW, realm_access={"roles": ["author"]}), caplog) == "no_role"
    # Entra ID's groups claim holds object ids; a single string is one value.
    fake.user = {"sub": "u-2", "groups": "2f7c9a4e-0000-4000-8000-000000000001"}
    groups = provider_for(fake, role_claim="groups", role_map=(("2f7c9a4e-0000-4000-8000-000000000001", "auditor"),))
    assert groups.principal(fake.token(NOW)).role == "auditor"


def test_a_role_map_naming_an_unknown_role_refuses_to_start(fake: FakeProvider) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        provider_for(fake, role_map=(("doctors", "doctor"),))


def test_a_rotated_key_is_fetched_when_a_token_names_it(fake: FakeProvider) -> None:
    monotonic = Monotonic()
    provider = provider_for(fake, monotonic)
    assert provider.principal(fake.token(NOW)).role == "clinician"
    assert fake.jwks_fetches == 1
    monotonic.now += 61  # past the minimum interval between early fetches, well inside the cache's lifetime
    fake.rotate("key-2")
    assert provider.principal(fake.token(NOW)).role == "clinician"
    assert fake.jwks_fetches == 2
    assert provider.principal(fake.token(NOW, kid="key-1")).role == "clinician"  # the old key: still cached
    assert fake.jwks_fetches == 2


def test_unknown_key_ids_fetch_the_keys_at_most_once_per_interval(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = Monotonic()
    provider = provider_for(fake, monotonic, jwks_min_refetch_seconds=60)
    provider.principal(fake.token(NOW))
    monotonic.now += 60
    for n in range(5):
        assert refusal(provider, fake.token(NOW, key=rsa_key(), kid=f"made-up-{n}"), caplog) == "unknown_key"
    assert fake.jwks_fetches == 2  # the first made-up id fetched again; the next four did not
    monotonic.now += 59
    refusal(provider, fake.token(NOW, key=rsa_key(), kid="made-up-5"), caplog)
    assert fake.jwks_fetches == 2
    monotonic.now += 1
    refusal(provider, fake.token(NOW, key=rsa_key(), kid="made-up-6"), caplog)
    assert fake.jwks_fetches == 3


def test_keys_are_fetched_again_when_the_cache_lifetime_ends(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = Monotonic()
    provider = provider_for(fake, monotonic, jwks_cache_seconds=600)
    old = fake.token(NOW)
    provider.principal(old)
    fake.rotate("key-2")
    del fake.keys["key-1"]  # the provider withdrew the old key
    monotonic.now += 599
    assert provider.principal(old).role == "clinician"  # still within the cache's lifetime
    monotonic.now += 1
    assert refusal(provider, old, caplog) == "unknown_key"
    assert fake.jwks_fetches == 2


def test_an_unreachable_provider_refuses_tokens(caplog: pytest.LogCaptureFixture) -> None:
    with serve(FakeProvider(), NOW) as fake:
        token = fake.token(NOW)
        provider = provider_for(fake)
    assert refusal(provider, token, caplog).startswith("keys_unavailable")


def test_a_discovery_document_for_another_issuer_is_not_trusted(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_issuer = fake.issuer
    fake.issuer = "https://evil.example"  # what the discovery document (and the token) will say
    token = fake.token(NOW, iss=fake_issuer)
    provider = Provider(OidcSettings(issuer=fake_issuer, audience=AUDIENCE), ManualClock(NOW))
    assert refusal(provider, token, caplog).startswith("keys_unavailable")


def test_keys_over_plain_http_to_another_machine_are_not_fetched(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    original = fake.metadata
    fake.metadata = lambda: {**original(), "jwks_uri": "http://keys.example.org/jwks"}  # type: ignore[method-assign]
    assert refusal(provider_for(fake), fake.token(NOW), caplog).startswith("keys_unavailable")
    assert fake.jwks_fetches == 0


def test_a_redirect_is_not_followed(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    redirecting = f"{fake.issuer}/authorize?redirect_uri={fake.issuer}/jwks&state=s"  # answers 302 to the JWKS
    provider = Provider(OidcSettings(issuer=fake.issuer, audience=AUDIENCE, jwks_url=redirecting), ManualClock(NOW))
    assert refusal(provider, fake.token(NOW), caplog).startswith("keys_unavailable")
    assert fake.jwks_fetches == 0


def test_a_configured_jwks_url_needs_no_discovery(fake: FakeProvider) -> None:
    issuer = "https://login.example.org/tenant/v2.0"  # not served: only the JWKS address is
    provider = Provider(
        OidcSettings(issuer=issuer, audience=AUDIENCE, jwks_url=f"{fake.issuer}/jwks"), ManualClock(NOW)
    )
    assert provider.principal(fake.token(NOW, iss=issuer)).role == "clinician"


def test_an_oversized_token_is_refused_before_any_fetch(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    assert refusal(provider_for(fake), fake.token(NOW, padding="x" * 20_000), caplog) == "malformed"
    assert fake.jwks_fetches == 0


def test_a_deeply_nested_header_is_refused(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    header = base64.urlsafe_b64encode(('{"alg":' + "[" * 5000 + "]" * 5000 + "}").encode()).rstrip(b"=").decode()
    assert refusal(provider_for(fake), f"{header}.e30.c2ln", caplog) == "malformed"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CAREPATH_OIDC_ISSUER": "http://idp.example.org/realms/x", "CAREPATH_OIDC_AUDIENCE": "a"}, "https"),
        ({"CAREPATH_OIDC_ISSUER": "https://idp.example.org/realms/x"}, "AUDIENCE"),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_ALGORITHMS": "RS256,HS256",
            },
            "ALGORITHMS",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_ALGORITHMS": "none",
            },
            "ALGORITHMS",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_LEEWAY_SECONDS": "3600",
            },
            "LEEWAY",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_ROLE_MAP": "clinician",
            },
            "ROLE_MAP",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_ROLE_CLAIM": "roles[0]",
            },
            "ROLE_CLAIM",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_SCOPES": "profile",
            },
            "openid",
        ),
        (
            {
                "CAREPATH_OIDC_ISSUER": "https://idp.example.org",
                "CAREPATH_OIDC_AUDIENCE": "a",
                "CAREPATH_OIDC_CLIENT_SECRET_FILE": "/nonexistent/secret",
            },
            "cannot be read",
        ),
    ],
)
def test_settings_refuse_what_would_weaken_the_checks(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_settings_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    settings = Settings.from_env(
        {
            "CAREPATH_OIDC_ISSUER": "https://login.microsoftonline.com/tenant-id/v2.0",
            "CAREPATH_OIDC_AUDIENCE": "api://carepath",
            "CAREPATH_OIDC_ROLE_MAP": '{"CarePath.Clinician": "clinician"}',
            "CAREPATH_OIDC_STAFF_ID_CLAIM": "preferred_username",
            "CAREPATH_OIDC_ALGORITHMS": "RS256",
            "CAREPATH_OIDC_CLIENT_ID": "web",
            "CAREPATH_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
        }
    ).oidc
    assert settings is not None and settings.web_sign_in
    assert settings.role_map == (("CarePath.Clinician", "clinician"),) and settings.algorithms == ("RS256",)
    assert settings.client_secret() == "s3cret" and "s3cret" not in repr(settings)
    assert Settings.from_env({}).oidc is None
    pairs = Settings.from_env(
        {
            "CAREPATH_OIDC_ISSUER": "http://localhost:8080/realms/x",
            "CAREPATH_OIDC_AUDIENCE": "a",
            "CAREPATH_OIDC_ROLE_MAP": "carepath-author=author, cn=x=auditor",
        }
    ).oidc
    assert pairs is not None and pairs.role_map == (("carepath-author", "author"), ("cn=x", "auditor"))
