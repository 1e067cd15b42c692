"""People log in through the form; sessions, CSRF, lockout and rate limits behave as a user sees."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.auth import SESSION_COOKIE
from app.config import Settings
from app.identity.models import User, WebSession
from app.main import create_app
from tests import factories
from tests.app.access_world import Side, build_side, sign_in


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def _login(client: TestClient, username: str, password: str, next_path: str = "/") -> object:
    form = client.get("/login", params={"next": next_path})
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": _csrf(form.text),
            "next": next_path,
        },
        follow_redirects=False,
    )


def test_login_sets_a_protected_session_cookie_and_shows_who_is_signed_in(
    client: TestClient, side: Side
) -> None:
    midwife = side.users["midwife"]
    response = _login(client, midwife.username, factories.DEFAULT_PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on a development machine

    home = client.get("/")
    assert home.status_code == 200
    assert midwife.username in home.text


def test_the_cookie_is_secure_over_https(app: FastAPI, side: Side) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        response = _login(client, side.users["lead"].username, factories.DEFAULT_PASSWORD)
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_keeps_the_username_and_says_what_is_wrong(
    client: TestClient, side: Side
) -> None:
    response = _login(client, side.users["midwife"].username, "not the password")
    assert response.status_code == 401
    assert "The username or password is not right." in response.text
    assert f'value="{side.users["midwife"].username}"' in response.text
    assert "not the password" not in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_login_returns_to_the_page_asked_for_and_never_off_site(
    client: TestClient, side: Side
) -> None:
    username = side.users["midwife"].username
    assert (
        _login(client, username, factories.DEFAULT_PASSWORD, "/account/password").headers[
            "location"
        ]
        == "/account/password"
    )
    client.cookies.clear()
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = _login(client, username, factories.DEFAULT_PASSWORD, hostile)
        assert response.headers["location"] == "/"
        client.cookies.clear()


def test_a_page_without_a_session_shows_the_login_form_and_comes_back(
    client: TestClient, side: Side
) -> None:
    page = client.get("/account/password")
    assert page.status_code == 401
    assert 'name="next" value="/account/password"' in page.text
    response = client.post(
        "/login",
        data={
            "username": side.users["midwife"].username,
            "password": factories.DEFAULT_PASSWORD,
            "csrf_token": _csrf(page.text),
            "next": "/account/password",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/account/password"


def test_a_login_form_without_its_csrf_token_is_refused_with_a_clear_page(
    client: TestClient, side: Side
) -> None:
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": side.users["midwife"].username, "password": factories.DEFAULT_PASSWORD},
    )
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert "Traceback" not in response.text


def test_logout_ends_the_session(client: TestClient, session: Session, side: Side) -> None:
    csrf = sign_in(client, session, side.users["midwife"])
    assert client.get("/").status_code == 200
    without_token = client.post("/logout", data={}, follow_redirects=False)
    assert without_token.status_code == 403
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/").status_code == 401


def test_repeated_failures_lock_the_account_for_a_growing_time(
    client: TestClient, session: Session, side: Side
) -> None:
    user = side.users["midwife"]
    for _ in range(5):
        assert _login(client, user.username, "wrong password!").status_code == 401
    session.expire_all()
    locked = session.get(User, user.id)
    assert locked is not None and locked.locked_until is not None
    first_lock = locked.locked_until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=50) < first_lock <= dt.timedelta(seconds=60)

    response = _login(client, user.username, factories.DEFAULT_PASSWORD)
    assert response.status_code == 401
    assert "locked until" in response.text

    locked.locked_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    session.flush()
    assert _login(client, user.username, "wrong again!!").status_code == 401
    session.expire_all()
    relocked = session.get(User, user.id)
    assert relocked is not None and relocked.locked_until is not None
    assert relocked.locked_until - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=100)

    relocked.locked_until = None
    session.flush()
    assert _login(client, user.username, factories.DEFAULT_PASSWORD).status_code == 303


@pytest.fixture
def strict_client(settings: Settings, app: FastAPI) -> Iterator[TestClient]:
    strict = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(
                update={"login_attempts_per_minute": 3, "api_requests_per_minute": 2}
            )
        }
    )
    application = create_app(strict)
    application.state.sessionmaker = app.state.sessionmaker
    with TestClient(application) as client:
        yield client


def test_login_attempts_are_rate_limited(strict_client: TestClient, side: Side) -> None:
    for _ in range(3):
        assert _login(strict_client, "nobody", "whatever-password").status_code == 401
    response = _login(strict_client, "nobody", "whatever-password")
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "Too many login attempts" in response.text


def test_api_clients_are_rate_limited(strict_client: TestClient, side: Side) -> None:
    headers = {"Authorization": f"Bearer {side.keys['epr']}"}
    url = f"/api/v1/pregnancies/{side.pregnancy.id}"
    assert [strict_client.get(url, headers=headers).status_code for _ in range(2)] == [200, 200]
    response = strict_client.get(url, headers=headers)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "rate_limited"


def test_first_login_must_change_the_password(
    client: TestClient, session: Session, side: Side
) -> None:
    user = factories.make_user(
        session, role="midwife", organisation=side.unit, must_change_password=True
    )
    response = _login(client, user.username, factories.DEFAULT_PASSWORD)
    assert response.headers["location"] == "/account/password"
    assert (
        client.get("/", follow_redirects=False).headers["location"].startswith("/account/password")
    )
    api = client.get(f"/api/v1/pregnancies/{side.pregnancy.id}")
    assert api.status_code == 403
    assert api.json()["error"] == "password_change_required"

    form = client.get("/account/password")
    csrf = _csrf(form.text)
    short = client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": factories.DEFAULT_PASSWORD,
            "new_password": "short",
            "confirm_password": "short",
        },
    )
    assert short.status_code == 422
    assert "at least 12 characters" in short.text
    assert 'href="#new_password"' in short.text
    assert 'id="new_password-error"' in short.text

    changed = client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": factories.DEFAULT_PASSWORD,
            "new_password": "a much longer passphrase",
            "confirm_password": "a much longer passphrase",
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert client.get("/").status_code == 200
    assert client.get(f"/api/v1/pregnancies/{side.pregnancy.id}").status_code == 200


def test_an_expired_session_is_401_with_a_clear_error(
    client: TestClient, session: Session, side: Side
) -> None:
    sign_in(client, session, side.users["midwife"])
    for row in session.scalars(select(WebSession)):
        row.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    session.flush()
    api = client.get(f"/api/v1/pregnancies/{side.pregnancy.id}")
    assert api.status_code == 401
    assert api.json()["error"] == "session_expired"
    sign_in(client, session, side.users["midwife"])
    for row in session.scalars(select(WebSession)):
        row.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    session.flush()
    page = client.get("/")
    assert page.status_code == 401
    assert "expired" in page.text


def test_a_disabled_user_is_refused(client: TestClient, session: Session, side: Side) -> None:
    from app.identity.service import set_active

    user = side.users["midwife"]
    sign_in(client, session, user)
    set_active(session, user=user, active=False)
    assert client.get(f"/api/v1/pregnancies/{side.pregnancy.id}").status_code == 401
    client.cookies.clear()
    response = _login(client, user.username, factories.DEFAULT_PASSWORD)
    assert response.status_code == 401
    assert "disabled" in response.text


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer exh_not-a-real-key", "not recognised"),
        ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
        ("Bearer ", "Authorization: Bearer"),
    ],
)
def test_a_wrong_credential_is_401_saying_why(
    client: TestClient, side: Side, authorization: str, message: str
) -> None:
    response = client.get(
        f"/api/v1/pregnancies/{side.pregnancy.id}", headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused(client: TestClient, session: Session, side: Side) -> None:
    from app.identity.service import revoke_api_client

    url = f"/api/v1/pregnancies/{side.pregnancy.id}"
    headers = {"Authorization": f"Bearer {side.keys['epr']}"}
    assert client.get(url, headers=headers).status_code == 200
    revoke_api_client(session, name=side.client_names["epr"], now=dt.datetime.now(dt.UTC))
    response = client.get(url, headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_secrets_are_stored_only_as_hashes(session: Session, side: Side) -> None:
    from app.identity.models import ApiClient

    for client_row in session.scalars(select(ApiClient)):
        for secret in side.keys.values():
            assert secret not in client_row.secret_digest
    for user in side.users.values():
        assert user.password_hash.startswith("$argon2id$")
        assert factories.DEFAULT_PASSWORD not in user.password_hash


def test_passwords_and_keys_never_reach_the_logs(
    client: TestClient, side: Side, capsys: pytest.CaptureFixture[str]
) -> None:
    _login(client, side.users["midwife"].username, "a wrong password here")
    _login(client, side.users["midwife"].username, factories.DEFAULT_PASSWORD)
    client.get(
        f"/api/v1/pregnancies/{side.pregnancy.id}",
        headers={"Authorization": f"Bearer {side.keys['epr']}"},
    )
    logs = capsys.readouterr().err
    assert "a wrong password here" not in logs
    assert factories.DEFAULT_PASSWORD not in logs
    assert side.keys["epr"] not in logs
    assert "Testpatient" not in logs
