"""Idempotency-Key: a retry answers the first answer and does nothing else (on PostgreSQL; the
races hold one transaction open from a test session while the API runs)."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from shared.billing import ledger
from shared.db import get_sessionmaker, session_scope
from shared.idempotency import service as idempotency_service
from shared.models import Batch, Call, CheckoutSession, IdempotencyKey, SmsMessage, utcnow
from tests import factories
from tests.api.conftest import KeyedClient

HEADER = "Idempotency-Key"


def keyed(api: KeyedClient, path: str, body: object, key: str) -> httpx.Response:
    return api.client.post(path, json=body, params={"apiKey": api.api_key}, headers={HEADER: key})


def count(model: type, account_id: str) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.account_id == account_id)  # type: ignore[attr-defined]
            )
            or 0
        )


def call_body() -> dict[str, str]:
    return {"campaign": "welcome", "name": "Ada", "phoneNumber": factories.phone_number()}


def assert_header_error(response: httpx.Response, words: str) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", HEADER]
    assert words in error["msg"]


@contextmanager
def held(lock_sql: str, **params: object) -> Iterator[Session]:
    """A test session holding a row lock until the block ends (then rolled back)."""
    session = get_sessionmaker()()
    try:
        session.execute(text(lock_sql), params)
        yield session
    finally:
        session.rollback()
        session.close()


def lock_waiters() -> int:
    """Backends of this database waiting for a lock."""
    with session_scope() as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.05)


class TestRepeat:
    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/api/make_toingg/", None),
            ("/api/make_toingg", None),
            ("/api/make/toingg", None),
            ("/api/make_toingg_details", "details"),
        ],
    )
    def test_same_key_and_body_answer_the_first_answer_and_place_one_call(
        self, api: KeyedClient, path: str, body: str | None
    ) -> None:
        payload: dict[str, str] = call_body()
        if body == "details":
            payload = {
                "campaignName": "inline",
                "campaignScript": "Hello {name}.",
                "name": "Ada",
                "phoneNumber": payload["phoneNumber"],
            }
        first = keyed(api, path, payload, "order-1")
        again = keyed(api, path, payload, "order-1")
        assert first.status_code == 200, first.text
        assert (again.status_code, again.content) == (first.status_code, first.content)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "RateLimit-Remaining" in again.headers
        assert count(Call, api.account_id) == 1

    def test_key_order_and_spacing_do_not_make_another_request(self, api: KeyedClient) -> None:
        body = call_body()
        first = keyed(api, "/api/make_toingg/", body, "k")
        reordered = api.client.post(
            "/api/make_toingg/",
            content=" {" + ", ".join(f'"{k}": "{v}"' for k, v in reversed(body.items())) + "}",
            params={"apiKey": api.api_key},
            headers={HEADER: "k", "Content-Type": "application/json"},
        )
        assert reordered.content == first.content
        assert count(Call, api.account_id) == 1

    def test_without_a_key_each_request_places_a_call(self, api: KeyedClient) -> None:
        body = call_body()
        assert api.post("/api/make_toingg/", json=body).status_code == 200
        assert api.post("/api/make_toingg/", json=body).status_code == 200
        assert count(Call, api.account_id) == 2

    def test_a_batch_repeated_is_one_batch(self, api: KeyedClient) -> None:
        rows = [{"clientName": "A", "clientNumber": factories.phone_number()} for _ in range(3)]
        body = {"campaign": "welcome", "numberList": rows}
        first = keyed(api, "/api/make_batch_toingg", body, "batch-1")
        again = keyed(api, "/api/make_batch_toingg", body, "batch-1")
        assert first.status_code == 200, first.text
        assert again.content == first.content
        assert (count(Batch, api.account_id), count(Call, api.account_id)) == (1, 3)

    def test_an_sms_repeated_is_sent_and_paid_once(self, api: KeyedClient) -> None:
        body = {"name": "Ada", "phoneNumber": factories.phone_number(), "message": "Hi"}
        first = keyed(api, "/api/send_sms", body, "sms-1")
        again = keyed(api, "/api/send_sms", body, "sms-1")
        assert first.status_code == 200, first.text
        assert again.content == first.content
        assert count(SmsMessage, api.account_id) == 1
        with session_scope() as session:
            assert ledger.balance_of(session, api.account_id) == 99

    def test_checkout_repeated_is_one_session(
        self, client: TestClient, carrier_server: str
    ) -> None:
        account_id, key = factories.account()
        body = {"apikey": key, "credits": 250}
        first = client.post("/api/create-checkout-session", json=body, headers={HEADER: "buy-1"})
        again = client.post("/api/create-checkout-session", json=body, headers={HEADER: "buy-1"})
        assert first.status_code == 200, first.text
        assert again.content == first.content
        assert count(CheckoutSession, account_id) == 1

    def test_the_same_key_on_another_account_is_its_own(
        self, api: KeyedClient, client: TestClient
    ) -> None:
        other_id, other_key = factories.account(credits=100)
        factories.campaign(other_id, name="welcome")
        body = call_body()
        mine = keyed(api, "/api/make_toingg/", body, "shared-key")
        theirs = keyed(
            KeyedClient(client, other_id, other_key), "/api/make_toingg/", body, "shared-key"
        )
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["callId"] != mine.json()["callId"]
        assert (count(Call, api.account_id), count(Call, other_id)) == (1, 1)


class TestMisuse:
    def test_same_key_with_another_body_is_422_naming_the_header(self, api: KeyedClient) -> None:
        assert keyed(api, "/api/make_toingg/", call_body(), "k1").status_code == 200
        assert_header_error(keyed(api, "/api/make_toingg/", call_body(), "k1"), "another request")
        assert count(Call, api.account_id) == 1

    def test_same_key_on_another_route_is_422(self, api: KeyedClient) -> None:
        body = call_body()
        assert keyed(api, "/api/make_toingg/", body, "k2").status_code == 200
        sms = {"name": "Ada", "phoneNumber": body["phoneNumber"], "message": "Hi"}
        assert_header_error(keyed(api, "/api/send_sms", sms, "k2"), "POST /api/make_toingg/")
        assert count(SmsMessage, api.account_id) == 0

    def test_keys_up_to_255_characters(self, api: KeyedClient) -> None:
        assert keyed(api, "/api/make_toingg/", call_body(), "x" * 255).status_code == 200
        assert_header_error(keyed(api, "/api/make_toingg/", call_body(), "x" * 256), "255")
        assert count(Call, api.account_id) == 1

    @pytest.mark.parametrize("bad", ["a\x01b", "a\x7fb", "a\tb"])
    def test_control_characters_are_422(self, api: KeyedClient, bad: str) -> None:
        assert_header_error(keyed(api, "/api/make_toingg/", call_body(), bad), "control")
        assert count(Call, api.account_id) == 0

    def test_an_empty_key_is_422(self, api: KeyedClient) -> None:
        assert_header_error(keyed(api, "/api/make_toingg/", call_body(), ""), "empty")


class TestOddBodies:
    """A keyed request with a body no route accepts is refused 4xx like an unkeyed one, never
    a 500 (the key's fingerprint reads the body before the route does)."""

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("text/plain", b"[" * 100_000 + b"]" * 100_000),  # JSON nested past Python's stack
            ("application/json", b"[" * 100_000 + b"]" * 100_000),
            (None, b"\xff\xfe\x00 not UTF-8"),
            ("application/json", b"\xff\xfe\x00 not UTF-8"),
            ("application/json", b'{"name": "\\ud800"}'),  # a lone surrogate, valid JSON
            ("application/json", b"[1, 2]"),
            ("application/json", b"not json"),
        ],
    )
    @pytest.mark.parametrize(
        "path", ["/api/make_toingg/", "/api/make/toingg", "/api/send_sms", "/api/make_batch_toingg"]
    )
    @pytest.mark.parametrize("key", ["odd-1", None])
    def test_are_refused_4xx(
        self, api: KeyedClient, path: str, content_type: str | None, body: bytes, key: str | None
    ) -> None:
        headers = {} if key is None else {HEADER: key}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = api.client.post(
            path, content=body, params={"apiKey": api.api_key}, headers=headers
        )
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["detail"]
        assert count(Call, api.account_id) == count(SmsMessage, api.account_id) == 0

    def test_checkout_with_a_body_not_utf_8_is_422(self, client: TestClient) -> None:
        response = client.post(
            "/api/create-checkout-session", content=b"\xff\xfe\x00", headers={HEADER: "odd-2"}
        )
        assert response.status_code == 422, response.text


class TestRefusalsAreNotRemembered:
    def test_after_a_422_the_key_serves_the_corrected_request(self, api: KeyedClient) -> None:
        bad = {**call_body(), "phoneNumber": "+1234567890"}
        assert keyed(api, "/api/make_toingg/", bad, "fix-me").status_code == 422
        fixed = keyed(api, "/api/make_toingg/", call_body(), "fix-me")
        assert fixed.status_code == 200, fixed.text
        assert count(Call, api.account_id) == 1

    def test_after_a_402_the_same_request_goes_through_once_credits_arrive(
        self, client: TestClient
    ) -> None:
        account_id, key = factories.account(credits=0)
        factories.campaign(account_id, name="welcome")
        api = KeyedClient(client, account_id, key)
        body = call_body()
        assert keyed(api, "/api/make_toingg/", body, "pay-first").status_code == 402
        with session_scope() as session:
            ledger.apply(
                session,
                ledger.Change(
                    account_id, 10, "manual_grant", "account", account_id, reference="grant"
                ),
            )
        assert keyed(api, "/api/make_toingg/", body, "pay-first").status_code == 200
        assert count(Call, account_id) == 1


class TestAcceptedAndRememberedTogether:
    def test_a_failure_storing_the_answer_leaves_no_call_and_the_retry_places_one(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fail(*_args: object) -> None:
            raise RuntimeError("the process died before its commit")

        body = call_body()
        with monkeypatch.context() as patch:
            patch.setattr(idempotency_service, "remember", fail)
            with TestClient(api.client.app, raise_server_exceptions=False) as crashing:
                crashed = crashing.post(
                    "/api/make_toingg/", json=body, params={"apiKey": api.api_key},
                    headers={HEADER: "crash"},
                )  # fmt: skip
        assert crashed.status_code == 500
        assert count(Call, api.account_id) == 0
        retry = keyed(api, "/api/make_toingg/", body, "crash")
        assert retry.status_code == 200, retry.text
        assert keyed(api, "/api/make_toingg/", body, "crash").content == retry.content
        assert count(Call, api.account_id) == 1


class TestInProgress:
    def test_a_repeat_while_the_first_is_handled_is_409_then_the_first_answer(
        self, api_server: str
    ) -> None:
        account_id, key = factories.account(credits=100)
        body = {"name": "Ada", "phoneNumber": factories.phone_number(), "message": "Hi"}

        def send() -> httpx.Response:
            return httpx.post(
                f"{api_server}/api/send_sms", json=body, params={"apiKey": key},
                headers={HEADER: "slow"}, timeout=60,
            )  # fmt: skip

        # The SMS charge updates the balance: holding the account row holds the first request
        # inside its work (foreign-key checks still pass: FOR NO KEY UPDATE).
        account_row = "SELECT 1 FROM accounts WHERE id = :id FOR NO KEY UPDATE"
        with ThreadPoolExecutor(1) as pool, held(account_row, id=account_id):
            first = pool.submit(send)
            wait_for(lambda: lock_waiters() == 1)
            repeat = send()
            assert repeat.status_code == 409, repeat.text
            assert HEADER in repeat.json()["detail"]
            assert repeat.headers["Retry-After"] == "1"
        assert first.result().status_code == 200, first.result().text
        assert send().content == first.result().content
        assert count(SmsMessage, account_id) == 1

    def test_two_first_requests_at_once_place_one_call(self, api_server: str) -> None:
        account_id, key = factories.account(credits=100)
        campaign_id = factories.campaign(account_id, name="welcome")
        body = call_body()
        start = threading.Barrier(2)

        def place() -> httpx.Response:
            start.wait()
            return httpx.post(
                f"{api_server}/api/make_toingg/", json=body, params={"apiKey": key},
                headers={HEADER: "together"}, timeout=60,
            )  # fmt: skip

        # Inserting the call checks its campaign's row (FOR KEY SHARE): holding that row keeps
        # whichever request won the key inside its work while the other arrives.
        campaign_row = "SELECT 1 FROM campaigns WHERE id = :id FOR UPDATE"
        with ThreadPoolExecutor(2) as pool, held(campaign_row, id=campaign_id):
            answers = [pool.submit(place), pool.submit(place)]
            wait_for(lambda: sum(a.done() for a in answers) == 1 and lock_waiters() == 1)
        statuses = sorted(a.result().status_code for a in answers)
        assert statuses == [200, 409], [a.result().text for a in answers]
        assert count(Call, account_id) == 1

    def test_a_burst_of_the_same_request_places_one_call(self, api_server: str) -> None:
        account_id, key = factories.account(credits=100)
        factories.campaign(account_id, name="welcome")
        body = call_body()
        start = threading.Barrier(8)

        def place() -> httpx.Response:
            start.wait()
            return httpx.post(
                f"{api_server}/api/make_toingg/", json=body, params={"apiKey": key},
                headers={HEADER: "burst"}, timeout=60,
            )  # fmt: skip

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: place(), range(8)))
        placed = {a.json()["callId"] for a in answers if a.status_code == 200}
        assert {a.status_code for a in answers} <= {200, 409}
        assert len(placed) == 1
        assert count(Call, account_id) == 1

    def test_a_key_held_by_a_live_transaction_is_409_and_free_once_it_ends_unanswered(
        self, api: KeyedClient
    ) -> None:
        body = call_body()
        request = idempotency_service.fingerprint(
            "POST", "/api/make_toingg/", httpx.Request("POST", "/", json=body).content
        )
        with session_scope() as session:
            idempotency_service.reserve(session, api.account_id, "held", request)
        # A request that reserved the key and is still working (or whose process dies now).
        with held(
            "SELECT 1 FROM idempotency_keys WHERE account_id = :a AND key = 'held' FOR UPDATE",
            a=api.account_id,
        ):
            assert keyed(api, "/api/make_toingg/", body, "held").status_code == 409
        # Its transaction ended without an answer: nothing was done, so the retry does it.
        retry = keyed(api, "/api/make_toingg/", body, "held")
        assert retry.status_code == 200, retry.text
        assert count(Call, api.account_id) == 1


class TestPurge:
    def test_keys_are_kept_a_day_then_forgotten(self, api: KeyedClient) -> None:
        body = call_body()
        first = keyed(api, "/api/make_toingg/", body, "old")
        keyed(api, "/api/make_toingg/", call_body(), "young")
        day = idempotency_service.KEEP
        ages = {"old": day + timedelta(minutes=1), "young": day - timedelta(minutes=1)}
        with session_scope() as session:
            for key, age in ages.items():
                session.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.account_id == api.account_id, IdempotencyKey.key == key)
                    .values(created_at=utcnow() - age, completed_at=utcnow() - age)
                )
        with session_scope() as session:
            assert idempotency_service.purge(session) >= 1
            keys = session.scalars(
                select(IdempotencyKey.key).where(IdempotencyKey.account_id == api.account_id)
            ).all()
        assert keys == ["young"]
        # Forgotten: the same key is a new request.
        again = keyed(api, "/api/make_toingg/", body, "old")
        assert again.json()["callId"] != first.json()["callId"]

    def test_beat_runs_the_purge(self) -> None:
        from shared.idempotency import jobs
        from workers.celery_app import app

        [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == jobs.PURGE]
        assert entry["schedule"] <= 3600
