"""Token lifecycle: refresh before expiry, rotation saved atomically, auth_broken when refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.base import Credentials
from adapters.standins.bluesky import BlueskyStandIn
from scheduler.core import deliveries, vault
from scheduler.core.db import session_scope
from scheduler.core.models import Account, utcnow
from scheduler.matrix import accounts
from scheduler.matrix.tokens import refresh_expiring
from tests.factories import make_delivery

pytestmark = pytest.mark.usefixtures("db_env")


@pytest.fixture
def bluesky() -> Iterator[BlueskyStandIn]:
    standin = BlueskyStandIn().start()
    yield standin
    standin.stop()


def add(standin: BlueskyStandIn, handle: str, expires_in: timedelta) -> int:
    creds = standin.add_account(handle)
    session = standin_login(standin, creds)
    with session_scope() as s:
        account = accounts.add(s, "bluesky", handle, Credentials({**creds, **session}), base_url=standin.url)
        account.token_expires_at = utcnow() + expires_in
        return account.id


def standin_login(standin: BlueskyStandIn, creds: dict[str, str]) -> dict[str, str]:
    from adapters.base import AccountRef
    from adapters.bluesky import BlueskyAdapter

    ref = AccountRef(id=0, platform="bluesky", handle=creds["identifier"], base_url=standin.url,
                     credentials=Credentials(creds))
    return BlueskyAdapter().refresh(ref).reveal()


def creds_of(account_id: int) -> tuple[Credentials, Account]:
    with session_scope() as s:
        row = s.get(Account, account_id)
        return vault.unseal(row.credentials), row


def test_tokens_expiring_within_the_margin_are_refreshed_and_rotation_saved(bluesky: BlueskyStandIn) -> None:
    soon = add(bluesky, "soon.test", timedelta(minutes=10))
    later = add(bluesky, "later.test", timedelta(days=2))
    before, row_before = creds_of(soon)
    calls = bluesky.refresh_calls
    result = refresh_expiring()
    assert result.refreshed == [soon] and result.broken == []
    assert bluesky.refresh_calls == calls + 1  # refreshed with the refresh token, not a new login
    after, row_after = creds_of(soon)
    assert after.get("refreshJwt") != before.get("refreshJwt")  # the rotated token is stored
    assert after.get("password") == before.get("password")  # nothing dropped
    assert row_after.credentials_version == row_before.credentials_version + 1
    assert creds_of(later)[1].credentials_version == 1


def test_refused_refresh_makes_the_account_auth_broken(bluesky: BlueskyStandIn) -> None:
    account_id = add(bluesky, "gone.test", timedelta(minutes=1))
    bluesky.expire_refresh_tokens()
    with session_scope() as s:
        row = s.get(Account, account_id)
        # the app password was changed too: no way back without an operator
        row.credentials = vault.seal(vault.unseal(row.credentials).merged(password="wrong-password-1"))
        make_delivery(s, row, utcnow())
    result = refresh_expiring()
    assert result.broken == [account_id]
    _, row = creds_of(account_id)
    assert row.status == "auth_broken" and "refused" in row.status_reason
    with session_scope() as s:
        assert deliveries.claim_due(s, utcnow(), 10) == []


def test_expires_at_reads_iso_times() -> None:
    got = Credentials({"expires_at": "2026-12-01T10:00:00Z"}).expires_at()
    assert got is not None and got.isoformat() == "2026-12-01T10:00:00+00:00"
    assert Credentials({"expires_at": "not a time"}).expires_at() is None
    assert Credentials({}).expires_at() is None
