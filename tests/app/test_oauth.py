"""Signed-JWT client credentials: what an EPR sees when its assertion is good, and each refusal."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.audit.models import AuditEvent
from app.clock import local_today
from app.config import Environment, Settings
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from app.errors import Conflict, InvalidInput
from app.identity.models import ApiClient
from app.identity.service import digest
from app.oauth import keys
from app.oauth import service as oauth
from app.oauth.errors import OAuthError
from app.oauth.jobs import prune_oauth_job
from app.oauth.models import AccessToken, UsedAssertion
from tests import factories
from tests.app.access_world import Side, build_side
from tests.app.oauth_helpers import (
    TOKEN_URL,
    assertion,
    ec_key,
    hmac_with_public_key,
    jwks,
    public_jwk,
    rsa_key,
    token_form,
    unsigned_assertion,
)
from tests.app.readings_helpers import due_for, reading


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_json=True, oauth={"token_url": TOKEN_URL})


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def epr(session: Session, side: Side) -> ApiClient:
    """An EPR client with two registered keys: an RSA one and an EC one."""
    client, _api_key = factories.make_api_client(session, role="epr", organisation=side.unit)
    keys.register(
        session,
        client=client,
        jwks_text=jwks(public_jwk(rsa_key(), "key-1"), public_jwk(ec_key(), "key-ec")),
        now=utcnow(),
    )
    return client


def _token(client: TestClient, client_assertion: str, **form: str | None) -> Any:
    return client.post("/oauth2/token", data=token_form(client_assertion, **form))


def _refused(response: Any, status_code: int, error: str, says: str) -> None:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert body["error"] == error
    assert says in body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def _denials(session: Session, reason: str) -> list[AuditEvent]:
    statement = select(AuditEvent).where(
        AuditEvent.outcome == "denied", AuditEvent.record_type == "api_client"
    )
    return [e for e in session.scalars(statement) if (e.detail or {}).get("reason") == reason]


def test_a_good_assertion_earns_a_token_that_records_a_reading(
    client: TestClient, session: Session, side: Side, epr: ApiClient
) -> None:
    response = _token(client, assertion(rsa_key(), epr.name))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 600
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert response.headers["cache-control"] == "no-store"

    headers = _bearer(body["access_token"])
    today = local_today()
    recorded = client.post(
        "/api/v1/readings", json=reading(on=today, edd=due_for(100, today)), headers=headers
    )
    assert recorded.status_code == 201, recorded.text
    found = client.get(f"/api/v1/pregnancies/{side.pregnancy.id}", headers=headers)
    assert found.status_code == 200

    stored = session.scalars(select(AccessToken)).all()
    assert [row.token_digest for row in stored] == [digest(body["access_token"])]
    issued = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login", AuditEvent.outcome == "allowed")
    ).one()
    assert (issued.actor_name, issued.role, issued.record_id) == (epr.name, "epr", epr.name)
    assert issued.detail == {"grant": "client_credentials", "kid": "key-1"}
    read = session.scalars(select(AuditEvent).where(AuditEvent.action == "read")).one()
    assert (read.actor_type, read.actor_name) == ("api_client", epr.name)


def test_the_token_acts_only_as_its_client(
    client: TestClient, session: Session, epr: ApiClient
) -> None:
    access_token = _token(client, assertion(rsa_key(), epr.name)).json()["access_token"]
    other = build_side(session)
    theirs = client.get(f"/api/v1/pregnancies/{other.pregnancy.id}", headers=_bearer(access_token))
    assert theirs.status_code == 404
    not_for_epr = client.get("/api/v1/referrals", headers=_bearer(access_token))
    assert not_for_epr.status_code == 403


def test_each_registered_key_signs_by_its_kid(client: TestClient, epr: ApiClient) -> None:
    by_ec = _token(client, assertion(ec_key(), epr.name, kid="key-ec", alg="ES256"))
    assert by_ec.status_code == 200, by_ec.text
    by_rsa_pss = _token(client, assertion(rsa_key(), epr.name, alg="PS256"))
    assert by_rsa_pss.status_code == 200, by_rsa_pss.text
    wrong_family = _token(client, assertion(ec_key(), epr.name, kid="key-1", alg="ES256"))
    _refused(wrong_family, 401, "invalid_client", "cannot verify alg ES256")
    other_key = _token(client, assertion(rsa_key("b"), epr.name, kid="key-1"))
    _refused(other_key, 401, "invalid_client", "signature is not valid")


def test_alg_none_is_refused(client: TestClient, session: Session, epr: ApiClient) -> None:
    response = _token(client, unsigned_assertion(epr.name))
    _refused(response, 401, "invalid_client", "alg 'none' is not accepted")
    assert len(_denials(session, "oauth_algorithm_refused")) == 1


def test_hs256_keyed_with_the_public_key_is_refused(client: TestClient, epr: ApiClient) -> None:
    response = _token(client, hmac_with_public_key(rsa_key(), epr.name))
    _refused(response, 401, "invalid_client", "alg 'HS256' is not accepted")


def test_a_replayed_jti_is_refused(client: TestClient, session: Session, epr: ApiClient) -> None:
    first = assertion(rsa_key(), epr.name, jti="once-only")
    assert _token(client, first).status_code == 200
    _refused(_token(client, first), 401, "invalid_client", "jti has been used already")
    fresh_signature_same_jti = assertion(
        ec_key(), epr.name, kid="key-ec", alg="ES256", jti="once-only"
    )
    _refused(_token(client, fresh_signature_same_jti), 401, "invalid_client", "jti")
    assert len(_denials(session, "oauth_jti_replayed")) == 2
    assert len(session.scalars(select(AccessToken)).all()) == 1


def test_a_wrong_audience_is_refused(client: TestClient, epr: ApiClient) -> None:
    elsewhere = assertion(rsa_key(), epr.name, aud="https://api.service.nhs.uk/oauth2/token")
    _refused(_token(client, elsewhere), 401, "invalid_client", f"endpoint's URL: {TOKEN_URL}")


@pytest.mark.parametrize(
    ("exp_in_s", "says"),
    [(-120, "has expired"), (600, "at most 5 minutes from now")],
    ids=["expired", "too-far-ahead"],
)
def test_exp_must_be_within_the_next_five_minutes(
    client: TestClient, epr: ApiClient, exp_in_s: int, says: str
) -> None:
    response = _token(client, assertion(rsa_key(), epr.name, exp_in_s=exp_in_s))
    _refused(response, 401, "invalid_client", says)


def test_a_little_clock_skew_is_allowed(client: TestClient, epr: ApiClient) -> None:
    just_expired = assertion(rsa_key(), epr.name, exp_in_s=-10)
    assert _token(client, just_expired).status_code == 200
    five_minutes_by_a_fast_clock = assertion(rsa_key(), epr.name, exp_in_s=310)
    assert _token(client, five_minutes_by_a_fast_clock).status_code == 200


def test_an_unknown_kid_or_client_is_refused(client: TestClient, epr: ApiClient) -> None:
    unknown_kid = assertion(rsa_key(), epr.name, kid="key-2")
    _refused(_token(client, unknown_kid), 401, "invalid_client", "No key with kid 'key-2'")
    unknown_client = assertion(rsa_key(), "not-a-client")
    _refused(_token(client, unknown_client), 401, "invalid_client", "No client is registered")


def test_a_revoked_key_is_refused_and_so_are_its_tokens(
    client: TestClient, session: Session, epr: ApiClient
) -> None:
    earlier = _token(client, assertion(rsa_key(), epr.name)).json()["access_token"]
    assert (
        client.get(
            "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer(earlier)
        ).status_code
        == 200
    )

    keys.revoke(session, client=epr, kid="key-1", now=utcnow())
    _refused(_token(client, assertion(rsa_key(), epr.name)), 401, "invalid_client", "revoked")
    refused = client.get(
        "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer(earlier)
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_credentials"
    assert (
        _token(client, assertion(ec_key(), epr.name, kid="key-ec", alg="ES256")).status_code == 200
    )


def test_an_expired_access_token_is_refused(
    client: TestClient, session: Session, epr: ApiClient
) -> None:
    access_token = _token(client, assertion(rsa_key(), epr.name)).json()["access_token"]
    session.execute(update(AccessToken).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    response = client.get(
        "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer(access_token)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"
    assert "POST /oauth2/token" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    made_up = client.get(
        "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer("exhat_made-up")
    )
    assert made_up.status_code == 401


def test_a_revoked_client_gets_no_token_and_its_tokens_stop(
    client: TestClient, session: Session, epr: ApiClient
) -> None:
    access_token = _token(client, assertion(rsa_key(), epr.name)).json()["access_token"]
    epr.revoked_at = utcnow()
    session.flush()
    _refused(_token(client, assertion(rsa_key(), epr.name)), 401, "invalid_client", "revoked")
    response = client.get(
        "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer(access_token)
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sub": "someone-else"}, "sub must equal iss"),
        ({"jti": None}, "needs iss, sub, aud, exp, jti"),
        ({"aud": None}, "needs iss, sub, aud, exp, jti"),
        ({"iat": 4102444800}, "not valid yet"),
        ({"exp": "soon"}, "not valid"),
        ({"jti": "x" * 256}, "jti must be"),
    ],
    ids=["sub", "no-jti", "no-aud", "iat-future", "exp-text", "jti-long"],
)
def test_claims_that_are_missing_or_wrong_are_refused(
    client: TestClient, epr: ApiClient, changes: dict[str, Any], says: str
) -> None:
    response = _token(client, assertion(rsa_key(), epr.name, **changes))
    _refused(response, 401, "invalid_client", says)


@pytest.mark.parametrize(
    ("form", "status_code", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"client_assertion_type": "urn:other"}, 400, "invalid_request"),
        ({"client_assertion": ""}, 400, "invalid_request"),
        ({"client_assertion": "not-a-jwt"}, 401, "invalid_client"),
        ({"client_assertion": "e30.e30.e30"}, 401, "invalid_client"),
        ({"client_assertion": "W10.W10."}, 401, "invalid_client"),
        ({"client_assertion": "x" * 20_000}, 400, "invalid_request"),
    ],
)
def test_malformed_requests_get_an_rfc_6749_error_never_a_500(
    client: TestClient, epr: ApiClient, form: dict[str, str | None], status_code: int, error: str
) -> None:
    data = {**token_form(assertion(rsa_key(), epr.name)), **form}
    data = {name: value for name, value in data.items() if value is not None}
    response = client.post("/oauth2/token", data=data)
    assert response.status_code == status_code, response.text
    assert response.json()["error"] == error


def test_json_bodies_and_wrong_client_ids_are_invalid_requests(
    client: TestClient, epr: ApiClient
) -> None:
    form = token_form(assertion(rsa_key(), epr.name))
    as_json = client.post("/oauth2/token", json=form)
    _refused(as_json, 400, "invalid_request", "application/x-www-form-urlencoded")
    as_multipart = client.post("/oauth2/token", files={"grant_type": (None, "client_credentials")})
    _refused(as_multipart, 400, "invalid_request", "form-encoded")
    garbled = client.post(
        "/oauth2/token", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
    )
    _refused(garbled, 400, "invalid_request", "form-encoded")
    twice = client.post(
        "/oauth2/token",
        content=urlencode([*form.items(), ("grant_type", "client_credentials")]),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _refused(twice, 400, "invalid_request", "Send grant_type once.")
    mismatch = _token(client, assertion(rsa_key(), epr.name), client_id="another")
    _refused(mismatch, 400, "invalid_request", "client_id differs")
    matching = _token(client, assertion(rsa_key(), epr.name), client_id=epr.name)
    assert matching.status_code == 200


def test_token_requests_are_rate_limited(app: Any, client: TestClient, epr: ApiClient) -> None:
    from app.ratelimit import RateLimiter

    app.state.api_limiter = RateLimiter(limit=2)
    statuses = [_token(client, assertion(rsa_key(), epr.name)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = _token(client, assertion(rsa_key(), epr.name))
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"] == "temporarily_unavailable"


def test_infinite_exp_is_refused_not_a_crash(client: TestClient, epr: ApiClient) -> None:
    import json

    import jwt as pyjwt

    payload = json.dumps(
        {"iss": epr.name, "sub": epr.name, "aud": TOKEN_URL, "jti": "j", "exp": 1e400}
    )
    signed = pyjwt.api_jws.encode(
        payload.encode(), rsa_key(), algorithm="RS512", headers={"kid": "key-1"}
    )
    response = _token(client, signed)
    assert response.status_code == 401


def test_neither_assertions_nor_tokens_reach_the_logs(
    client: TestClient, epr: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = assertion(rsa_key(), epr.name)
    access_token = _token(client, signed).json()["access_token"]
    _token(client, signed)  # replayed: refused, and logged as such
    client.get(
        "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=_bearer(access_token)
    )
    logged = capsys.readouterr().err
    assert "oauth_token_issued" in logged
    assert "oauth_token_refused" in logged
    assert signed not in logged
    assert signed.split(".")[2] not in logged
    assert access_token not in logged


def test_production_needs_the_token_url(database_url: str, app: Any) -> None:
    from app.main import create_app

    production = Settings(
        database_url=database_url,
        environment=Environment.production,
        secret_key="s" * 32,
        delivery={"sealing_keys": Fernet.generate_key().decode()},
    )
    application = create_app(production)
    application.state.sessionmaker = app.state.sessionmaker
    with TestClient(application, raise_server_exceptions=False) as client:
        response = client.post("/oauth2/token", data=token_form("x"))
    application.state.engine.dispose()
    assert response.status_code == 503
    assert "EXHALE_OAUTH__TOKEN_URL" in response.json()["error_description"]


def test_development_without_a_token_url_uses_the_url_called(
    database_url: str, app: Any, epr: ApiClient
) -> None:
    from app.main import create_app

    application = create_app(Settings(database_url=database_url))
    application.state.sessionmaker = app.state.sessionmaker
    with TestClient(application, raise_server_exceptions=False) as client:
        here = assertion(rsa_key(), epr.name, aud="http://testserver/oauth2/token")
        assert _token(client, here).status_code == 200
        _refused(_token(client, assertion(rsa_key(), epr.name)), 401, "invalid_client", "aud")
    application.state.engine.dispose()


def test_the_worker_forgets_expired_tokens_and_spent_jtis(
    client: TestClient, session: Session, settings: Settings, epr: ApiClient
) -> None:
    assert _token(client, assertion(rsa_key(), epr.name)).status_code == 200
    factory = sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")
    assert prune_oauth_job(factory, settings) == 0
    an_hour_ago = utcnow() - dt.timedelta(hours=1)
    session.execute(update(AccessToken).values(expires_at=an_hour_ago))
    session.execute(update(UsedAssertion).values(expires_at=an_hour_ago))
    assert prune_oauth_job(factory, settings) == 2
    session.expire_all()
    assert session.scalars(select(UsedAssertion)).all() == []
    assert session.scalars(select(AccessToken)).all() == []


# --- registering keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("not json", "not JSON"),
        ('{"keys": []}', "at least one key"),
        (jwks({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}), "private key material"),
        (jwks({"kty": "oct", "kid": "h"}), "use an RSA or EC key"),
        (jwks(public_jwk(rsa_key(), "k", d="AQAB")), "private key material"),
        (jwks(public_jwk(rsa_key(), "k", use="enc")), "use `sig`"),
        (jwks(public_jwk(rsa_key(), "k", alg="HS256")), "alg 'HS256'"),
        (jwks(public_jwk(rsa_key(), "k", alg="ES256")), "alg 'ES256'"),
        (jwks(public_jwk(rsa_key("small", 1024), "k")), "shorter than 2048 bits"),
        (jwks(public_jwk(rsa_key(), "")), "needs a `kid`"),
        (jwks(public_jwk(rsa_key(), "k"), public_jwk(ec_key(), "k")), "share a `kid`"),
        (jwks({**public_jwk(rsa_key(), "k"), "n": "AAAA"}), "not a valid public key"),
    ],
    ids=[
        "not-json",
        "empty",
        "hmac-secret",
        "oct",
        "private-rsa",
        "enc",
        "hs256",
        "es-on-rsa",
        "short-rsa",
        "no-kid",
        "kid-twice",
        "bad-modulus",
    ],
)
def test_a_jwks_that_is_not_a_set_of_public_signing_keys_is_refused(
    session: Session, epr: ApiClient, document: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        keys.register(session, client=epr, jwks_text=document, now=utcnow())
    assert says in refused.value.detail


def test_rotation_adds_new_kids_and_never_reuses_one(session: Session, epr: ApiClient) -> None:
    current = [public_jwk(rsa_key(), "key-1"), public_jwk(ec_key(), "key-ec")]
    rotated = jwks(*current, public_jwk(rsa_key("next"), "key-2"))
    registration = keys.register(session, client=epr, jwks_text=rotated, now=utcnow())
    assert (registration.added, registration.unchanged) == (["key-2"], ["key-1", "key-ec"])
    assert [k.kid for k in keys.list_(session, client=epr)] == ["key-1", "key-ec", "key-2"]

    with pytest.raises(Conflict, match="registered with another key"):
        keys.register(
            session, client=epr, jwks_text=jwks(public_jwk(rsa_key("b"), "key-1")), now=utcnow()
        )
    keys.revoke(session, client=epr, kid="key-1", now=utcnow())
    with pytest.raises(Conflict, match="cannot return"):
        keys.register(session, client=epr, jwks_text=rotated, now=utcnow())


# --- PostgreSQL: the unique constraint settles a race -------------------------------------------


@pytest.mark.postgres
def test_two_concurrent_uses_of_one_jti_exactly_one_wins(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    factory = make_sessionmaker(engine)
    try:
        with session_scope(factory) as session:
            unit = factories.make_unit(session, service=factories.make_service(session))
            epr, _key = factories.make_api_client(session, role="epr", organisation=unit)
            text = jwks(public_jwk(rsa_key(), "key-1"))
            keys.register(session, client=epr, jwks_text=text, now=utcnow())
            name = epr.name
        signed = assertion(rsa_key(), name)
        policy = oauth.TokenPolicy(
            audience=TOKEN_URL,
            max_assertion_lifetime=dt.timedelta(minutes=5),
            clock_skew=dt.timedelta(seconds=30),
            token_ttl=dt.timedelta(minutes=10),
        )
        request = oauth.TokenRequest("client_credentials", oauth.ASSERTION_TYPE, signed)
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def use() -> None:
            start.wait(timeout=10)
            try:
                with session_scope(factory) as session:
                    oauth.issue_token(session, request=request, policy=policy, now=utcnow())
                outcomes.append("issued")
            except OAuthError as refusal:
                outcomes.append(refusal.reason)

        threads = [threading.Thread(target=use) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["issued", "jti_replayed"]
        with session_scope(factory) as session:
            assert len(session.scalars(select(AccessToken)).all()) == 1
    finally:
        engine.dispose()
