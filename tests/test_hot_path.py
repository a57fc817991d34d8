"""The publish hot path (issue 11): the claim takes the rate gates, so a waiting delivery is never
handed out only to be deferred; a publish pays no gate statement, yet respects a Retry-After that came
after its claim; a single-request publish costs four statements in two transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import event, select, update

from adapters.base import Credentials
from adapters.standins import StandIn, standin_class
from scheduler.core import deliveries, publishing, ratelimit
from scheduler.core.db import engine, session_scope
from scheduler.core.models import Account, Attempt, Delivery, RateGate, utcnow
from scheduler.core.ticks import messages
from scheduler.matrix import accounts
from tests.conftest import Env
from tests.factories import make_account, make_delivery

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the rule, pure -------------------------------------------------------------------------------
def test_reserve_spaces_one_accounts_deliveries_from_its_gate() -> None:
    due = [(1, 7, at(0)), (2, 7, at(0)), (3, 7, at(0)), (4, 8, at(0))]
    times, gates = ratelimit.reserve(due, {7: at(0.5)}, 1.0, until=at(2))
    assert times == {1: at(0.5), 2: at(1.5), 4: at(0)}  # 3 would go at 2.5: a later tick's
    assert gates == {7: at(2.5), 8: at(1)}


def test_reserve_keeps_a_late_due_time_and_spaces_after_it() -> None:
    # The second is due later than the gate lets the first go: it keeps its own time, and the third,
    # due with it, goes one interval after it (never two posts at once because both were late).
    due = [(1, 7, at(0)), (2, 7, at(5)), (3, 7, at(5))]
    times, _ = ratelimit.reserve(due, {}, 1.0, until=at(10))
    assert times == {1: at(0), 2: at(5), 3: at(6)}


def test_reserve_without_spacing_sends_everything_due_at_its_time() -> None:
    due = [(n, 7, at(0)) for n in range(1, 6)]
    times, _ = ratelimit.reserve(due, {7: at(-3)}, 0.0, until=at(0))
    assert times == {n: at(0) for n in range(1, 6)}


# -- handing a burst to the workers, pure ----------------------------------------------------------
def test_deliveries_that_fit_the_slots_go_one_per_message() -> None:
    claimed = [(n, at(0)) for n in range(1, 5)]
    assert messages(claimed, slots=4, most=8) == [([n], at(0)) for n in range(1, 5)]


def test_a_burst_beyond_the_slots_goes_several_per_message_and_every_slot_gets_one() -> None:
    claimed = [(n, at(0)) for n in range(1, 11)]
    sent = messages(claimed, slots=4, most=8)
    assert sent == [([1, 2, 3], at(0)), ([4, 5, 6], at(0)), ([7, 8, 9], at(0)), ([10], at(0))]
    # Capped: 100 over 4 slots would be 25 per message.
    assert {len(ids) for ids, _ in messages([(n, at(0)) for n in range(100)], slots=4, most=8)} == {8, 4}
    # most=1 turns batching off.
    assert messages(claimed, slots=4, most=1) == [([n], at(0)) for n in range(1, 11)]


def test_only_deliveries_with_the_same_send_time_share_a_message() -> None:
    claimed = [(1, at(0)), (2, at(1)), (3, at(0)), (4, at(1)), (5, at(0))]
    assert messages(claimed, slots=1, most=8) == [([1, 3, 5], at(0)), ([2, 4], at(1))]


def test_the_tick_sizes_its_messages_to_the_slots_the_live_workers_announced(db_env: Env) -> None:
    from scheduler.core import ticks, workers

    now = utcnow()
    with session_scope() as s:
        due = [make_delivery(s, make_account(s, handle=f"desk{n}"), now - timedelta(seconds=1)).id
               for n in range(6)]
        workers.announce(s, "crosspost-1@a", 1, now)
        workers.announce(s, "crosspost-2@b", 1, now)
        workers.announce(s, "crosspost-3@gone", 40, now - workers.TTL)  # died without withdrawing
        assert workers.live_slots(s, now) == 2
    sent: list[list[int]] = []
    assert sorted(ticks.tick(lambda ids, eta: sent.append(ids), now).claimed) == sorted(due)
    assert sorted(len(ids) for ids in sent) == [3, 3]  # six due at once over two slots
    with session_scope() as s:
        workers.withdraw(s, "crosspost-1@a")
        workers.announce(s, "crosspost-2@b", 3, now)  # renewed with another concurrency
        assert workers.live_slots(s, now) == 3
        more = [make_delivery(s, make_account(s, handle=f"more{n}"), now - timedelta(seconds=1)).id
                for n in range(6)]
    # PUBLISH_SLOTS, when set, is taken instead of what the workers say.
    db_env.set(publish_slots="6")
    sent.clear()
    assert sorted(ticks.tick(lambda ids, eta: sent.append(ids), now).claimed) == sorted(more)
    assert sorted(len(ids) for ids in sent) == [1] * 6


# -- the claim takes the gates ---------------------------------------------------------------------
@pytest.mark.usefixtures("db_env")
def test_claim_hands_out_only_what_the_gate_lets_through_then_the_rest_in_turn() -> None:
    with session_scope() as s:
        account = make_account(s)
        ids = [make_delivery(s, account, at(-1)).id for _ in range(5)]
    handed: list[tuple[int, datetime]] = []
    for tick in range(4):
        with session_scope() as s:
            handed += deliveries.claim_due_by(s, at(tick), 100, timedelta(seconds=1), spacing=1.0)
    # The first now (its due time has passed: an earlier time would let the second follow it at once),
    # then each one second after the previous, in due order; at most two per one-second tick.
    assert [d for d, _ in handed] == ids
    times = [t for _, t in handed]
    assert times == [at(0), at(1), at(2), at(3), at(4)]
    with session_scope() as s:
        gate = s.get(RateGate, ratelimit.account_scope(account.id))
        assert gate is not None and gate.next_at == times[-1] + timedelta(seconds=1)


@pytest.mark.usefixtures("db_env")
def test_one_accounts_backlog_does_not_hold_up_the_others() -> None:
    with session_scope() as s:
        busy, quiet = make_account(s), make_account(s)
        for _ in range(50):
            make_delivery(s, busy, at(-10))
        waiting = make_delivery(s, quiet, at(-1)).id
    with session_scope() as s:
        handed = dict(deliveries.claim_due_by(s, at(0), 100, timedelta(seconds=1), spacing=1.0))
    assert waiting in handed and len(handed) == 3  # two of the backlog, and the other account's one


@pytest.mark.usefixtures("db_env")
def test_claim_skips_an_account_or_platform_blocked_past_the_interval() -> None:
    with session_scope() as s:
        blocked, other_app, free = make_account(s), make_account(s, "bluesky"), make_account(s, "telegram")
        ids = {a.id: make_delivery(s, a, at(-1)).id for a in (blocked, other_app, free)}
        ratelimit.block(s, ratelimit.account_scope(blocked.id), at(60))
        ratelimit.block(s, ratelimit.app_scope("bluesky"), at(60))
    with session_scope() as s:
        handed = deliveries.claim_due_by(s, at(0), 100, timedelta(seconds=1), spacing=0.0)
    assert [d for d, _ in handed] == [ids[free.id]]


# -- the publish respects a Retry-After that came after its claim ---------------------------------
@pytest.mark.usefixtures("db_env")
def test_a_retry_after_since_the_claim_defers_the_publish_without_an_attempt() -> None:
    now = utcnow()
    with session_scope() as s:
        account = make_account(s)
        delivery_id = make_delivery(s, account, now - timedelta(seconds=1)).id
        assert deliveries.claim_due(s, now, 10) == [delivery_id]
        ratelimit.block(s, ratelimit.account_scope(account.id), now + timedelta(minutes=5))
    assert publishing.publish_delivery(delivery_id) == "deferred"
    assert_waits_without_attempt(delivery_id, now + timedelta(minutes=5), "Retry-After")


def assert_waits_without_attempt(delivery_id: int, until: datetime, reason: str) -> None:
    """The publish sent the delivery back to wait until ``until``, for ``reason``, before any attempt."""
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        assert (row.state, row.attempts, row.due_at) == ("retry_wait", 0, until)
        assert reason in (row.last_error or "")
        assert s.scalar(select(Attempt.id).where(Attempt.delivery_id == delivery_id)) is None


# -- what one publish costs ------------------------------------------------------------------------
@pytest.fixture
def mastodon() -> Iterator[StandIn]:
    standin = standin_class("mastodon")().start()
    yield standin
    standin.stop()


class Statements:
    """Counts what one block sends to the database: statements (transaction control aside) and
    transactions, with a cursor listener on the engine."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.transactions = 0

    def __enter__(self) -> Statements:
        event.listen(engine(), "before_cursor_execute", self._statement)
        event.listen(engine(), "begin", self._begin)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(engine(), "before_cursor_execute", self._statement)
        event.remove(engine(), "begin", self._begin)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            self.sql.append(statement)

    def _begin(self, _conn: Any) -> None:
        self.transactions += 1


def claimed_posts(mastodon: StandIn, count: int) -> list[int]:
    """``count`` due deliveries to one account on the Mastodon stand-in, claimed as a tick would."""
    now = utcnow()
    with session_scope() as s:
        creds = Credentials(mastodon.add_account("desk"))
        account = accounts.add(s, "mastodon", "desk@example.social", creds, base_url=mastodon.url)
        due = now - timedelta(seconds=1)
        ids = [make_delivery(s, account, due, text=f"Story {n}").id for n in range(count)]
        assert sorted(deliveries.claim_due(s, now, 10)) == sorted(ids)
    return ids


@pytest.mark.parametrize("spacing", ["0", "1"])
def test_a_single_request_publish_costs_four_statements_in_two_transactions(
        spacing: str, db_env: Env, mastodon: StandIn) -> None:
    db_env.set(account_min_interval=spacing)  # with it, the start also keeps the account's interval
    [delivery_id] = claimed_posts(mastodon, 1)
    with Statements() as seen:
        assert publishing.publish_delivery(delivery_id, "celery-1") == "published"
    assert len(seen.sql) <= 4, "\n".join(seen.sql)
    assert seen.transactions <= 2
    with session_scope() as s:
        attempt = s.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)).one()
        row = s.get(Delivery, delivery_id)
    assert (attempt.number, attempt.outcome, attempt.celery_id) == (1, "published", "celery-1")
    assert attempt.remote_id == row.remote_id and row.state == "published" and len(mastodon.posts()) == 1


# -- the account's least interval, kept at the start ---------------------------------------------
def last_start(delivery_id: int) -> datetime | None:
    with session_scope() as s:
        return s.scalar(select(Account.last_started_at).join(Delivery, Delivery.account_id == Account.id)
                        .where(Delivery.id == delivery_id))


def test_a_late_message_waits_out_the_accounts_interval_after_the_previous_start(
        db_env: Env, mastodon: StandIn) -> None:
    """Two deliveries of one account whose messages reach the workers together (late, or after a
    backlog): the second waits until ACCOUNT_MIN_INTERVAL after the first began, posting nothing."""
    db_env.set(account_min_interval="60")
    first, second = claimed_posts(mastodon, 2)
    assert publishing.publish_delivery(first) == "published"
    began = last_start(first)
    assert began is not None
    assert publishing.publish_delivery(second) == "deferred"
    assert_waits_without_attempt(second, began + timedelta(seconds=60), "ACCOUNT_MIN_INTERVAL (60 s)")
    assert last_start(second) == began  # the refused start was rolled back, its time with it
    assert len(mastodon.posts()) == 1


def test_what_is_left_of_the_interval_within_a_tick_is_waited_out_on_the_thread(
        db_env: Env, mastodon: StandIn) -> None:
    """Timer jitter (a message a little early relative to the previous one's late start) is not worth a
    round trip through the tick: the worker waits the rest of the interval, then publishes."""
    db_env.set(account_min_interval="0.3")  # the tests' tick is 0.5 s
    first, second = claimed_posts(mastodon, 2)
    assert [publishing.publish_delivery(d) for d in (first, second)] == ["published", "published"]
    with session_scope() as s:
        starts = s.scalars(select(Attempt.started_at).order_by(Attempt.started_at)).all()
    assert len(starts) == 2 and (starts[1] - starts[0]).total_seconds() >= 0.3
    assert len(mastodon.posts()) == 2


def test_a_start_queued_behind_another_on_the_same_account_sees_its_time(
        db_env: Env, mastodon: StandIn) -> None:
    """The interval holds between workers starting at the same moment: the second start waits for the
    first's hold on the account row, then finds the account started just now."""
    db_env.set(account_min_interval="60")
    [delivery_id] = claimed_posts(mastodon, 1)
    with session_scope() as s:
        account_id = s.scalar(select(Delivery.account_id).where(Delivery.id == delivery_id))
    outcome: list[str] = []
    with engine().connect() as other:
        with other.begin():
            # Another worker's start, in flight: its transaction holds the account's row.
            other.execute(update(Account).where(Account.id == account_id).values(last_started_at=utcnow()))
            racer = threading.Thread(target=lambda: outcome.append(publishing.publish_delivery(delivery_id)))
            racer.start()
            racer.join(0.5)
            assert racer.is_alive(), "the second start did not wait for the first's transaction"
        racer.join(30)
    assert outcome == ["deferred"] and mastodon.posts() == []


@pytest.mark.usefixtures("db_env")
def test_publishes_on_one_thread_reuse_one_kept_alive_connection(mastodon: StandIn) -> None:
    ids = claimed_posts(mastodon, 3)
    before = mastodon.connections
    for delivery_id in ids:
        assert publishing.publish_delivery(delivery_id) == "published"
    assert len(mastodon.posts()) == 3
    assert mastodon.connections - before <= 1  # one (or none, if the identity check's was kept)


@pytest.mark.parametrize("proxy", [False, True])
def test_a_platform_session_prepares_what_requests_would(proxy: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's short path (no merging of what it never sets) sends the same request as requests'
    own: the session's headers under the request's, a header set to None removed, query and body kept;
    with a proxy in the environment, requests' own path runs and finds it."""
    import requests

    from adapters.http import new_session

    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = new_session()
    plain = requests.Session()
    plain.headers["User-Agent"] = session.headers["User-Agent"]
    plain.trust_env = proxy
    request = requests.Request("POST", "https://example.org/api/v1/statuses", params={"q": "a b"},
                               json={"status": "Story"}, headers={"Idempotency-Key": "k1", "Accept": None})
    ours, theirs = session.prepare_request(request), plain.prepare_request(request)
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers) and "Accept" not in ours.headers
    assert ours.headers["Idempotency-Key"] == "k1" and ours.headers["User-Agent"].startswith("crosspost/")
    settings = session.merge_environment_settings(ours.url, {}, None, None, None)
    assert settings == plain.merge_environment_settings(theirs.url, {}, None, None, None)
    assert settings["proxies"] == ({"https": "http://proxy.example:3128"} if proxy else {})


def test_a_kept_session_stores_no_cookie_from_one_account_for_another() -> None:
    """The session is shared by every account of a platform on a thread: a cookie set in one account's
    answer must not go out with the next account's request."""
    from adapters import get_adapter

    sent: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            sent.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "sid=account-a; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = get_adapter("mastodon").session
        assert get_adapter("mastodon").session is session  # kept for the next publish on this thread
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        session.get(url, timeout=5)
        session.get(url, timeout=5)
    finally:
        server.shutdown()
    assert sent == [None, None]


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(
        pg_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ping per checkout (a round trip each): only a connection idle for a while is checked, and
    one the server closed meanwhile (a restart) is replaced instead of failing the next publish."""
    import psycopg
    from sqlalchemy import text

    from scheduler.core import db

    with session_scope() as s:
        backend = s.scalar(text("SELECT pg_backend_pid()"))
    url = engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    with session_scope() as s:
        assert s.scalar(text("SELECT pg_backend_pid()")) != backend


@pytest.mark.usefixtures("db_env")
def test_a_platform_block_ending_within_the_interval_sets_the_send_time() -> None:
    with session_scope() as s:
        account = make_account(s, "bluesky")
        delivery_id = make_delivery(s, account, at(-1)).id
        ratelimit.block(s, ratelimit.app_scope("bluesky"), at(0.5))
    with session_scope() as s:
        assert deliveries.claim_due_by(s, at(0), 10, timedelta(seconds=1)) == [(delivery_id, at(0.5))]


@pytest.mark.usefixtures("db_env")
def test_a_polling_broker_gets_its_messages_one_poll_earlier() -> None:
    from config.settings import get_settings
    from scheduler.core import ticks

    now = utcnow()
    interval = get_settings().tick_interval
    with session_scope() as s:
        delivery_id = make_delivery(s, make_account(s), now + timedelta(seconds=interval + 0.5)).id
    sent: list[tuple[list[int], datetime | None]] = []
    assert ticks.tick(lambda ids, eta: sent.append((ids, eta)), now).claimed == []
    assert ticks.tick(lambda ids, eta: sent.append((ids, eta)), now, lead=1.0).claimed == [delivery_id]
    assert sent == [([delivery_id], now + timedelta(seconds=interval + 0.5))]  # with its time as the eta
