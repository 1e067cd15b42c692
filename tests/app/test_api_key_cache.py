"""The per-process API key cache: a key revoked elsewhere is refused once its entry expires."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.identity import service as identity
from app.identity.models import ApiClient
from tests import factories


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    identity.API_KEY_CACHE.clear()
    yield
    identity.API_KEY_CACHE.clear()


def _client(session: Session) -> tuple[ApiClient, str]:
    unit = factories.make_unit(session, service=factories.make_service(session))
    return factories.make_api_client(session, role="epr", organisation=unit)


def _revoke_elsewhere(session: Session, client: ApiClient) -> None:
    """As another process (`exhale apikey revoke`) does: this process's cache is not told."""
    session.execute(
        update(ApiClient)
        .where(ApiClient.id == client.id)
        .values(revoked_at=dt.datetime.now(dt.UTC))
    )


def test_a_key_revoked_elsewhere_is_refused_once_its_entry_expires(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, secret = _client(session)
    principal = identity.principal_for_api_key(session, secret, cache_s=5)
    assert principal.organisation_kind == "maternity_unit"
    _revoke_elsewhere(session, client)
    assert identity.principal_for_api_key(session, secret, cache_s=5) == principal
    later = identity.time.monotonic() + 5.1
    monkeypatch.setattr(identity.time, "monotonic", lambda: later)
    with pytest.raises(identity.InvalidApiKeyError, match="revoked"):
        identity.principal_for_api_key(session, secret, cache_s=5)


def test_without_the_cache_a_revocation_counts_at_once(session: Session) -> None:
    client, secret = _client(session)
    identity.principal_for_api_key(session, secret, cache_s=0)
    _revoke_elsewhere(session, client)
    with pytest.raises(identity.InvalidApiKeyError, match="revoked"):
        identity.principal_for_api_key(session, secret, cache_s=0)


def test_revoking_in_this_process_clears_its_cache(session: Session) -> None:
    client, secret = _client(session)
    identity.principal_for_api_key(session, secret, cache_s=5)
    identity.revoke_api_client(session, name=client.name, now=dt.datetime.now(dt.UTC))
    with pytest.raises(identity.InvalidApiKeyError, match="revoked"):
        identity.principal_for_api_key(session, secret, cache_s=5)


def test_an_unknown_key_is_never_cached(session: Session) -> None:
    for _ in range(2):
        with pytest.raises(identity.InvalidApiKeyError, match="not recognised"):
            identity.principal_for_api_key(session, "exh_not-a-key", cache_s=5)
    assert identity.API_KEY_CACHE.get(identity.digest("exh_not-a-key")) is None
