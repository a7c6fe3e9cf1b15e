"""Delivery, driven in the tests' process (claim, start, send, record, as the tick and its
worker do): signatures, outcomes, each subject's order, addresses checked again at delivery,
and what a customer reads back, resends and replays."""

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import TextClause, delete, select, text
from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.db import session_scope
from shared.events import outbox
from shared.models import Event, WebhookDelivery, WebhookEndpoint, new_id, utcnow
from shared.webhooks import delivery, endpoints
from shared.webhooks.schemas import EndpointCreate
from tests import factories
from tests.api.conftest import KeyedClient
from tests.webhooks.receiver import Receiver
from workers.tasks import webhooks

PATH = "/api/webhook-endpoints"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE_SECONDS", [0.05])
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_WINDOW_SECONDS", 60.0)
    monkeypatch.setattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 2.0)


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account()
    yield KeyedClient(client, account_id, key)
    # Nothing of this account's is left for another test's claims.
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def add_endpoint(account_id: str, url: str, events: list[str] | None = None) -> tuple[str, str]:
    with session_scope() as session:
        endpoint = endpoints.create(
            session, account_id, EndpointCreate(url=url, events=events or ["*"])
        )
        return endpoint.id, endpoint.secret


def append(account_id: str, subject_id: str, type_: str = "call.queued") -> Event:
    with session_scope() as session:
        return outbox.append(
            session, account_id, type_, type_.partition(".")[0], subject_id,
            {"id": subject_id, "status": type_.partition(".")[2]},
        )  # fmt: skip


def deliver(requests: list[delivery.Request]) -> list[str]:
    """Send the requests and record their outcomes together, as the worker's senders and
    recorder do: what each attempt's record said."""
    return webhooks.record([(request, delivery.send(request)) for request in requests])


def run_due() -> list[str]:
    """One claim and its attempts, in this process: what each attempt's record said."""
    with session_scope() as session:
        requests = delivery.claim_due(session)
    return deliver(requests)


def run_until(done: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        run_due()
        time.sleep(0.05)


def state_of(endpoint_id: str, event_id: str) -> str | None:
    with session_scope() as session:
        return session.scalar(
            select(WebhookDelivery.state).where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
            )
        )


class TestSigned:
    def test_retried_until_2xx_with_the_same_id_and_a_valid_signature_every_time(
        self, customer: KeyedClient
    ) -> None:
        with Receiver(lambda n: 500 if n <= 3 else 200) as receiver:
            endpoint_id, secret = add_endpoint(customer.account_id, receiver.url)
            event = append(customer.account_id, new_id(), "call.completed")
            run_until(lambda: state_of(endpoint_id, event.id) == "delivered")
            got = receiver.requests()
        assert len(got) == 4
        assert {r.headers["webhook-id"] for r in got} == {event.id}
        for request in got:
            body = request.verified_with(secret)
            assert body["type"] == "call.completed"
            assert body["data"] == event.data
            assert body["timestamp"].endswith("Z")
            assert (body["subjectType"], body["subjectId"], body["sequence"]) == (
                "call", event.subject_id, event.sequence,
            )  # fmt: skip
        page = customer.get(f"{PATH}/{endpoint_id}/deliveries").json()
        [shown] = page["items"]
        assert shown["eventId"] == event.id and shown["state"] == "delivered"
        assert [a["statusCode"] for a in shown["attempts"]] == [500, 500, 500, 200]
        assert [a["error"] for a in shown["attempts"]] == ["answered 500"] * 3 + [None]
        assert all(a["latencyMs"] is not None for a in shown["attempts"])

    def test_after_a_rotation_both_secrets_sign_for_a_day(self, customer: KeyedClient) -> None:
        with Receiver() as receiver:
            endpoint_id, old = add_endpoint(customer.account_id, receiver.url)
            new = customer.post(f"{PATH}/{endpoint_id}/rotate-secret").json()["secret"]
            event = append(customer.account_id, new_id())
            run_until(lambda: state_of(endpoint_id, event.id) == "delivered")
            [request] = receiver.requests()
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert request.verified_with(old) == request.verified_with(new)
        with session_scope() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None and endpoint.previous_secret_expires_at is not None
            later = endpoint.previous_secret_expires_at
            assert endpoints.signing_secrets(endpoint, later) == [new]

    def test_a_redirect_is_not_followed(self, customer: KeyedClient) -> None:
        with Receiver(lambda n: 302) as receiver:
            _endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            append(customer.account_id, new_id())
            [said] = run_due()
            assert len(receiver.requests()) == 1
        assert "redirects are not followed" in said

    def test_no_answer_within_the_timeout_is_a_failed_attempt(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_TIMEOUT_SECONDS", 0.5)
        with Receiver(lambda n: None) as receiver:
            _endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            append(customer.account_id, new_id())
            started = time.monotonic()
            [said] = run_due()
            took = time.monotonic() - started
        assert "no answer within 0.5 s" in said
        assert took < 2


class TestOutcomes:
    def test_410_disables_the_endpoint_at_once_with_an_event(self, customer: KeyedClient) -> None:
        with Receiver(lambda n: 410) as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            event = append(customer.account_id, new_id())
            assert run_due() == ["gone: endpoint disabled"]
        shown = customer.get(f"{PATH}/{endpoint_id}").json()
        assert shown["enabled"] is False and shown["disabledReason"] == "answered 410 Gone"
        assert state_of(endpoint_id, event.id) == "failed"
        events = customer.get("/api/events", type="webhook_endpoint.*").json()["items"]
        [disabled] = events
        assert disabled["subjectId"] == endpoint_id
        assert disabled["data"]["enabled"] is False and "secret" not in disabled["data"]

    def test_failing_for_the_whole_window_gives_up_and_disables(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_SCHEDULE_SECONDS", [0.1])
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_WINDOW_SECONDS", 1.0)
        with Receiver(lambda n: 503) as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            event = append(customer.account_id, new_id())
            run_until(lambda: state_of(endpoint_id, event.id) == "failed")
            tried = receiver.requests()
        assert len(tried) >= 3
        # The last attempt falls at the window's end.
        assert 0.9 < tried[-1].at - tried[0].at < 1.5
        shown = customer.get(f"{PATH}/{endpoint_id}").json()
        assert shown["enabled"] is False
        assert shown["disabledReason"] == "every attempt failed for the retry window"
        [disabled] = customer.get("/api/events", type="webhook_endpoint.disabled").json()["items"]
        assert disabled["subjectId"] == endpoint_id

    def test_an_endpoint_that_delivered_within_the_window_stays_enabled(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_SCHEDULE_SECONDS", [0.1])
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_WINDOW_SECONDS", 1.0)
        # The first event's requests fail, the other's are delivered.
        with Receiver(lambda n: 200) as receiver:
            receiver.answer = lambda n: (
                200 if '"call.answered"' in receiver.received[-1].body else 500
            )
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            stuck = append(customer.account_id, new_id(), "call.queued")
            run_due()
            fine = append(customer.account_id, new_id(), "call.answered")
            run_until(lambda: state_of(endpoint_id, stuck.id) == "failed")
        assert state_of(endpoint_id, fine.id) == "delivered"
        assert customer.get(f"{PATH}/{endpoint_id}").json()["enabled"] is True

    def test_a_delivery_recorded_before_a_failure_of_the_same_moment_keeps_it_enabled(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_WINDOW_SECONDS", 0.5)
        with Receiver() as receiver:
            receiver.answer = lambda n: 500 if '"queued"' in receiver.received[n - 1].body else 200
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            failing = append(customer.account_id, new_id(), "call.queued")
            append(customer.account_id, new_id(), "call.ringing")
            with session_scope() as session:
                claimed = delivery.claim_due(session)
            # Claimed together; the delivered one is recorded first.
            [fails] = [r for r in claimed if r.message.event_id == failing.id]
            [goes] = [r for r in claimed if r is not fails]
            assert deliver([goes]) == ["delivered"]
            assert deliver([fails])[0].startswith("attempt 1 failed")
            run_until(lambda: state_of(endpoint_id, failing.id) == "failed")
        assert customer.get(f"{PATH}/{endpoint_id}").json()["enabled"] is True

    def test_attempts_recorded_together_each_say_what_became_of_their_delivery(
        self, customer: KeyedClient
    ) -> None:
        """Delivered, failed, and one whose delivery a resend moved on meanwhile: in one
        record, each as it would be alone."""
        with Receiver() as receiver:
            receiver.answer = lambda n: 500 if '"ringing"' in receiver.received[n - 1].body else 200
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            goes = append(customer.account_id, new_id(), "call.queued")
            fails = append(customer.account_id, new_id(), "call.ringing")
            resent = append(customer.account_id, new_id(), "call.answered")
            with session_scope() as session:
                claimed = {r.message.event_id: r for r in delivery.claim_due(session)}
            sent = [(claimed[e.id], delivery.send(claimed[e.id])) for e in (goes, fails, resent)]
            assert customer.post(f"/api/events/{resent.id}/resend").status_code == 200
            said = webhooks.record(sent)
            assert said[0] == "delivered"
            assert said[1].startswith("attempt 1 failed")
            assert said[2] == delivery.MOVED_ON
            assert [state_of(endpoint_id, e.id) for e in (goes, fails, resent)] == [
                "delivered",
                "pending",
                "pending",
            ]
            # The resent one goes again, as its own new attempt.
            assert run_due() == ["delivered"]
            assert state_of(endpoint_id, resent.id) == "delivered"

    def test_enabled_again_it_is_delivered_what_was_still_pending(
        self, customer: KeyedClient
    ) -> None:
        with Receiver() as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            event = append(customer.account_id, new_id())
            customer.patch(f"{PATH}/{endpoint_id}", {"enabled": False})
            assert run_due() == []
            customer.patch(f"{PATH}/{endpoint_id}", {"enabled": True})
            run_until(lambda: state_of(endpoint_id, event.id) == "delivered")


class TestOrder:
    def test_a_subjects_later_event_waits_for_the_earlier_and_others_go_on(
        self, customer: KeyedClient
    ) -> None:
        call_a, call_b = new_id(), new_id()
        failing = {"on": True}

        def answer(n: int) -> int:
            body = receiver.received[n - 1].body
            return 500 if failing["on"] and call_a in body and "queued" in body else 200

        with Receiver(answer) as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            a1 = append(customer.account_id, call_a, "call.queued")
            a2 = append(customer.account_id, call_a, "call.ringing")
            b1 = append(customer.account_id, call_b, "call.queued")
            for _ in range(5):
                run_due()
                time.sleep(0.06)
            assert state_of(endpoint_id, b1.id) == "delivered"
            assert (state_of(endpoint_id, a1.id), state_of(endpoint_id, a2.id)) == (
                "pending", "pending",
            )  # fmt: skip
            assert all(call_a not in r.body or "queued" in r.body for r in receiver.requests())
            failing["on"] = False
            run_until(lambda: state_of(endpoint_id, a2.id) == "delivered")
            ids = [r.headers["webhook-id"] for r in receiver.requests()]
        assert ids.index(a2.id) > max(i for i, x in enumerate(ids) if x == a1.id)

    def test_an_earlier_event_given_up_holds_the_later_no_more(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_RETRY_WINDOW_SECONDS", 0.3)
        call = new_id()
        with Receiver() as receiver:
            receiver.answer = lambda n: 500 if '"queued"' in receiver.received[n - 1].body else 200
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            first = append(customer.account_id, call, "call.queued")
            second = append(customer.account_id, call, "call.ringing")
            # Another event delivered meanwhile keeps the endpoint from being disabled.
            append(customer.account_id, new_id(), "call.ringing")
            run_until(lambda: state_of(endpoint_id, second.id) == "delivered")
        assert state_of(endpoint_id, first.id) == "failed"


class TestEndpointConcurrency:
    def test_a_slow_endpoint_with_a_backlog_takes_its_share_of_senders_and_no_more(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_ENDPOINT_CONCURRENCY", 3)
        slow, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/slow", ["call.*"])
        fast, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/fast", ["sms.*"])
        for _ in range(10):
            append(customer.account_id, new_id(), "call.queued")
        append(customer.account_id, new_id(), "sms.queued")

        def claimed() -> list[str]:
            with session_scope() as session:
                return [
                    r.endpoint_id
                    for r in delivery.claim_due(session, 50)
                    if r.endpoint_id in (slow, fast)
                ]

        first = claimed()
        assert sorted(first) == sorted([slow, slow, slow, fast])
        # Its three still in flight: none more of the slow endpoint's.
        assert claimed() == []


class TestConcurrentClaims:
    def test_a_claim_held_open_is_skipped_by_another_and_none_is_claimed_twice(
        self, customer: KeyedClient
    ) -> None:
        """Two workers' claims at once (PostgreSQL, READ COMMITTED): the first holds its rows
        uncommitted while the second claims, then commits; nothing is claimed by both."""
        endpoint_id, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/")
        for _ in range(6):
            append(customer.account_id, new_id())
        with session_scope() as first:
            held = delivery.claim_due(first, 4)
            with session_scope() as second:
                meanwhile = delivery.claim_due(second, 50)
        with session_scope() as third:
            after = delivery.claim_due(third, 50)
        claims = [r.delivery_id for r in held + meanwhile + after if r.endpoint_id == endpoint_id]
        assert len([r for r in held if r.endpoint_id == endpoint_id]) == 4
        assert len(claims) == len(set(claims)) == 6


def rows_handled(plan: dict[str, Any]) -> int:
    """Rows a plan node and those under it produced or threw away, over all their loops: the
    work a statement did, whatever the machine's speed."""
    loops = plan.get("Actual Loops", 1)
    own = plan.get("Actual Rows", 0) + sum(
        plan.get(key, 0) for key in ("Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    return own * loops + sum(rows_handled(child) for child in plan.get("Plans", []))


def bitmap_indexes(plan: dict[str, Any]) -> list[str]:
    """The indexes a plan reads by a bitmap."""
    own = [plan["Index Name"]] if plan["Node Type"] == "Bitmap Index Scan" else []
    return own + [name for child in plan.get("Plans", []) for name in bitmap_indexes(child)]


def forget_statistics(session: Session, table: str) -> None:
    """Until the transaction ends, the table and its indexes as if never analyzed (the
    catalogs' rows, changed in this transaction only)."""
    session.execute(
        text("DELETE FROM pg_statistic WHERE starelid = CAST(:t AS regclass)"), {"t": table}
    )
    session.execute(
        text(
            """
            UPDATE pg_class SET reltuples = -1, relpages = 0
            WHERE oid = CAST(:t AS regclass)
               OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = CAST(:t AS regclass))
            """
        ),
        {"t": table},
    )


def planned_as_prepared(
    session: Session, statement: TextClause, params: dict[str, Any], plan: str = "generic"
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `statement` as the server runs it once prepared and run a few times
    over: by default a generic plan, made without the parameters' values (the driver prepares a
    statement at its fifth run, and the server keeps a generic plan from the sixth); "custom",
    the plan made for the values, as its first runs have."""
    names = list(dict.fromkeys(re.findall(r"(?<![:\w]):(\w+)", statement.text)))
    sql = statement.text
    for place, name in enumerate(names, 1):
        sql = re.sub(rf"(?<![:\w]):{name}\b", f"${place}", sql)

    def typed(value: datetime | str | int | list[str] | list[int]) -> tuple[str, str]:
        if isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                return "text[]", f"ARRAY[{', '.join(typed(item)[1] for item in value)}]::text[]"
            return "integer[]", f"ARRAY[{', '.join(str(int(item)) for item in value)}]::integer[]"
        if isinstance(value, datetime):
            return "timestamptz", f"'{value.isoformat()}'"
        if isinstance(value, str):
            return "text", "'" + value.replace("'", "''") + "'"
        return "bigint", str(int(value))

    typed_params = [typed(params[name]) for name in names]
    types = ", ".join(type_ for type_, _ in typed_params)
    values = ", ".join(value for _, value in typed_params)
    connection = session.connection()
    connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = force_{plan}_plan")
    connection.exec_driver_sql(f"PREPARE planned ({types}) AS {sql}")
    explained = connection.exec_driver_sql(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned({values})"
    ).scalar_one()
    connection.exec_driver_sql("DEALLOCATE planned")
    return explained[0]["Plan"]


class TestClaimUnderABacklog:
    def test_a_burst_after_the_table_was_analyzed_quiet_is_claimed_in_linear_work(
        self, customer: KeyedClient
    ) -> None:
        """The planner's figures for the table come from its last ANALYZE, usually taken while
        next to nothing was pending. A burst of thousands must not turn each claim into work
        that grows with the square of the backlog (it did: 95 million rows for 12,000)."""
        endpoint_id, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/")
        subjects, per_subject, flying = 4_000, 3, 8
        prefix = f"backlog-{new_id()}-"
        with session_scope() as session:
            session.execute(
                text(
                    """
                    INSERT INTO events (id, account_id, type, subject_type, subject_id,
                                        sequence, created_at, data)
                    SELECT gen_random_uuid()::text, :account, 'call.queued', 'call',
                           :prefix || s, q, now(), '{}'::jsonb
                    FROM generate_series(1, :subjects) s, generate_series(1, :per_subject) q
                    """
                ),
                {"account": customer.account_id, "prefix": prefix, "subjects": subjects,
                 "per_subject": per_subject},
            )  # fmt: skip
            session.execute(
                text(
                    """
                    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type,
                        subject_type, subject_id, sequence, state, attempts, next_attempt_at,
                        created_at, updated_at)
                    SELECT gen_random_uuid()::text, :endpoint, id, type, subject_type,
                           subject_id, sequence, 'delivered', 1, NULL, now(), now()
                    FROM events WHERE account_id = :account
                    """
                ),
                {"endpoint": endpoint_id, "account": customer.account_id},
            )
        with session_scope() as session:
            session.execute(text("ANALYZE webhook_deliveries"))
            session.execute(text("ANALYZE webhook_endpoints"))
        with session_scope() as session:
            # The burst: all pending and due, the first few subjects' first events in flight.
            session.execute(
                text(
                    """
                    UPDATE webhook_deliveries
                    SET state = 'pending', next_attempt_at = now() - interval '1 second'
                    WHERE endpoint_id = :endpoint
                    """
                ),
                {"endpoint": endpoint_id},
            )
            session.execute(
                text(
                    """
                    UPDATE webhook_deliveries
                    SET claim = gen_random_uuid()::text,
                        next_attempt_at = now() + interval '15 seconds'
                    WHERE endpoint_id = :endpoint AND sequence = 1
                      AND subject_id IN (SELECT :prefix || s FROM generate_series(1, :n) s)
                    """
                ),
                {"endpoint": endpoint_id, "prefix": prefix, "n": flying},
            )
        per_endpoint = get_settings().WEBHOOK_ENDPOINT_CONCURRENCY
        limit = delivery.CLAIM_BATCH
        params = {
            **delivery._claim_params(utcnow()),
            "limit": limit,
            "per_endpoint": per_endpoint,
            "candidates": delivery.CANDIDATES * limit,
        }
        with session_scope() as session:
            delivery.read_due_in_order(session)
            plan = planned_as_prepared(session, delivery._DUE, params)
            session.rollback()
        handled = rows_handled(plan)
        print(f"claim over {subjects * per_subject:,} pending: {handled:,} rows handled")
        assert handled < 20 * subjects * per_subject
        # A table with no statistics at all, as a new deployment's is until its first ANALYZE:
        # the planner took a bitmap of every due delivery, and probed each (54,721 rows alone
        # on this table), where the due index read in its order stops at the candidates it
        # wants (7,521). What it picks instead depends on what else the table holds, so what is
        # asserted is that no bitmap of the due index is read.
        for mode in ("custom", "generic"):
            with session_scope() as session:
                forget_statistics(session, "webhook_deliveries")
                delivery.read_due_in_order(session)
                plan = planned_as_prepared(session, delivery._DUE, params, mode)
                session.rollback()
            print(f"claim ({mode} plan) with no statistics: {rows_handled(plan):,} rows handled")
            assert "ix_webhook_deliveries_due" not in bitmap_indexes(plan)
        # And what it claims is right: none in flight, no subject's later event before its first.
        with session_scope() as session:
            claimed = delivery.claim_due(session)
        ours = [r for r in claimed if r.endpoint_id == endpoint_id]
        assert len(ours) == per_endpoint - flying
        with session_scope() as session:
            sequences = session.scalars(
                select(WebhookDelivery.sequence).where(
                    WebhookDelivery.id.in_([r.delivery_id for r in ours])
                )
            ).all()
        assert set(sequences) == {1}
        assert not {r.subject_id for r in ours} & {f"{prefix}{s}" for s in range(1, flying + 1)}
        # Recording those delivered reads their own rows, not the endpoint's whole backlog.
        now = utcnow()
        with session_scope() as session:
            plan = planned_as_prepared(
                session,
                delivery._ALL_DELIVERED,
                {"attempt_ids": [r.attempt_id for r in ours],
                 "delivery_ids": [r.delivery_id for r in ours],
                 "status_codes": [200] * len(ours), "latencies_ms": [5] * len(ours),
                 "now": now, "stale": now},
            )  # fmt: skip
            session.rollback()
        handled = rows_handled(plan)
        print(f"{len(ours)} deliveries recorded: {handled:,} rows handled")
        # Those rows and their plan's overheads, where a plan that reads the endpoint's
        # deliveries reads all 12,000.
        assert handled < 1_000


class TestFanOut:
    def test_only_matching_enabled_endpoints_of_the_account(self, customer: KeyedClient) -> None:
        other_id, _ = factories.account()
        calls, texts, off = (
            add_endpoint(customer.account_id, "http://127.0.0.1:9/a", ["call.*"])[0],
            add_endpoint(customer.account_id, "http://127.0.0.1:9/b", ["sms.delivered"])[0],
            add_endpoint(customer.account_id, "http://127.0.0.1:9/c")[0],
        )
        customer.patch(f"{PATH}/{off}", {"enabled": False})
        foreign = add_endpoint(other_id, "http://127.0.0.1:9/d")[0]
        event = append(customer.account_id, new_id(), "call.completed")
        assert state_of(calls, event.id) == "pending"
        for endpoint_id in (texts, off, foreign):
            assert state_of(endpoint_id, event.id) is None
        with session_scope() as session:
            session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == foreign))

    def test_an_event_rolled_back_is_owed_to_no_one(self, customer: KeyedClient) -> None:
        endpoint_id, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/a")
        with pytest.raises(RuntimeError), session_scope() as session:
            outbox.append(session, customer.account_id, "call.queued", "call", new_id(), {})
            raise RuntimeError("the status change failed")
        assert customer.get(f"{PATH}/{endpoint_id}/deliveries").json()["total"] == 0


class TestResendAndReplay:
    def test_an_event_is_sent_again(self, customer: KeyedClient) -> None:
        with Receiver() as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url)
            event = append(customer.account_id, new_id())
            run_until(lambda: state_of(endpoint_id, event.id) == "delivered")
            response = customer.post(f"/api/events/{event.id}/resend")
            assert response.status_code == 200, response.text
            assert response.json() == {"deliveries": 1}
            run_until(lambda: len(receiver.requests()) == 2)
            assert state_of(endpoint_id, event.id) == "delivered"
            assert {r.headers["webhook-id"] for r in receiver.requests()} == {event.id}
        [shown] = customer.get(f"{PATH}/{endpoint_id}/deliveries").json()["items"]
        assert [a["statusCode"] for a in shown["attempts"]] == [200, 200]

    def test_another_accounts_event_is_not_found(self, customer: KeyedClient) -> None:
        other_id, _ = factories.account()
        event = append(other_id, new_id())
        assert customer.post(f"/api/events/{event.id}/resend").status_code == 404

    def test_replay_sends_everything_since_a_time_in_each_subjects_order(
        self, customer: KeyedClient
    ) -> None:
        call = new_id()
        before = append(customer.account_id, new_id(), "call.queued")
        time.sleep(0.01)
        since = utcnow()
        time.sleep(0.01)
        later = [append(customer.account_id, call, t) for t in ("call.queued", "call.ringing")]
        texts = append(customer.account_id, new_id(), "sms.sent")
        with Receiver() as receiver:
            endpoint_id, _ = add_endpoint(customer.account_id, receiver.url, ["call.*"])
            response = customer.post(
                f"{PATH}/{endpoint_id}/replay",
                since=since.isoformat(),
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"deliveries": 2}
            run_until(lambda: len(receiver.requests()) == 2)
            ids = [r.headers["webhook-id"] for r in receiver.requests()]
        assert before.id not in ids and texts.id not in ids
        assert ids.index(later[0].id) < ids.index(later[1].id)

    def test_replay_wants_a_time_with_its_offset(self, customer: KeyedClient) -> None:
        endpoint_id, _ = add_endpoint(customer.account_id, "http://127.0.0.1:9/a")
        response = customer.post(f"{PATH}/{endpoint_id}/replay", since="2026-01-01T00:00:00")
        assert response.status_code == 422, response.text
        # Before year 1 in UTC: a 500.
        response = customer.post(f"{PATH}/{endpoint_id}/replay", since="0001-01-01T00:00:00+01:00")
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "since"] and "UTC" in error["msg"]


class TestAddressesAtDelivery:
    @pytest.fixture
    def dns(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> Any:
            if host not in names:
                return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in names[host]]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        names["__lookups__"] = lookups  # type: ignore[assignment]
        return names

    def test_a_name_that_turns_private_after_registration_is_refused_in_production(
        self, customer: KeyedClient, dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "ENVIRONMENT", "production")
        monkeypatch.setattr(get_settings(), "WEBHOOK_ALLOW_PRIVATE_URLS", None)
        with Receiver() as receiver:
            dns["hooks.example.com"] = ["93.184.215.14"]
            created = customer.post(PATH, {"url": f"http://hooks.example.com:{receiver.port}/h"})
            assert created.status_code == 201, created.text
            dns["hooks.example.com"] = ["127.0.0.1"]  # rebound to us
            append(customer.account_id, new_id())
            [said] = run_due()
            assert receiver.requests() == []
        assert "refused: hooks.example.com resolves to 127.0.0.1, a loopback address" in said
        [shown] = customer.get(f"{PATH}/{created.json()['id']}/deliveries").json()["items"]
        assert shown["state"] == "pending" and shown["attempts"][0]["statusCode"] is None

    def test_the_request_goes_to_the_address_that_was_checked(
        self, customer: KeyedClient, dns: dict[str, list[str]]
    ) -> None:
        with Receiver() as receiver:
            dns["hooks.example.com"] = ["127.0.0.1"]
            endpoint_id, _ = add_endpoint(
                customer.account_id, f"http://hooks.example.com:{receiver.port}/h"
            )
            dns["__lookups__"].clear()
            event = append(customer.account_id, new_id())
            run_until(lambda: state_of(endpoint_id, event.id) == "delivered")
            [request] = receiver.requests()
        # Looked up once, for the check; the connection went where the check said.
        assert dns["__lookups__"] == ["hooks.example.com"]
        assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"

    def test_requests_to_a_receiver_go_over_one_kept_connection(
        self, customer: KeyedClient, dns: dict[str, list[str]]
    ) -> None:
        with Receiver(keep_alive=True) as receiver:
            dns["kept.example.com"] = ["127.0.0.1"]
            add_endpoint(customer.account_id, f"http://kept.example.com:{receiver.port}/h")
            dns["__lookups__"].clear()
            for _ in range(3):
                append(customer.account_id, new_id())
            assert run_due() == ["delivered"] * 3
            sent = receiver.requests()
        # Each checked again, and all sent over the connection the first one opened.
        assert dns["__lookups__"] == ["kept.example.com"] * 3
        assert len({r.peer_port for r in sent}) == 1
        assert {r.headers["Host"] for r in sent} == {f"kept.example.com:{receiver.port}"}

    def test_a_kept_connection_carries_no_request_checked_for_another_address(
        self, customer: KeyedClient, dns: dict[str, list[str]]
    ) -> None:
        with Receiver(keep_alive=True) as receiver:
            dns["moved.example.com"] = ["127.0.0.1"]
            endpoint_id, _ = add_endpoint(
                customer.account_id, f"http://moved.example.com:{receiver.port}/h"
            )
            first = append(customer.account_id, new_id())
            assert run_due() == ["delivered"]
            # Now the name stands for an address the receiver does not listen on: the next
            # request goes there, not over the connection still open to the old one.
            dns["moved.example.com"] = ["127.0.0.2"]
            append(customer.account_id, new_id())
            [said] = run_due()
            assert len(receiver.requests()) == 1
        assert said.startswith("attempt 1 failed (ConnectError"), said
        assert state_of(endpoint_id, first.id) == "delivered"

    def test_a_name_that_takes_its_time_to_resolve_is_an_attempt_within_the_timeout(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A name whose DNS server never answers (the customer's own): the lookup came before
        # the request's deadline, so a sender waited for the resolver's own timeouts, past the
        # claim's lease, and the delivery was claimed and sent again meanwhile.
        slow, answered = threading.Event(), threading.Event()
        real = socket.getaddrinfo

        def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
            if host != "slow.example.com":
                return real(host, port, *args, **kwargs)
            if slow.is_set():
                answered.wait(30)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 9))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        endpoint_id, _ = add_endpoint(customer.account_id, "http://slow.example.com:9/h")
        slow.set()
        monkeypatch.setattr(get_settings(), "WEBHOOK_TIMEOUT_SECONDS", 1.0)
        try:
            append(customer.account_id, new_id())
            started = time.monotonic()
            [said] = run_due()
            took = time.monotonic() - started
        finally:
            answered.set()
        assert took < 3, f"the attempt took {took:.1f} s"
        assert "slow.example.com did not resolve within 1 s" in said
        [shown] = customer.get(f"{PATH}/{endpoint_id}/deliveries").json()["items"]
        assert shown["state"] == "pending"
        assert "did not resolve within 1 s" in shown["attempts"][0]["error"]
