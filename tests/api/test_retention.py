"""Retention: Twilio's callback parameters, SMS bodies and Stripe event payloads older than
RETENTION_DAYS are emptied in short batches; the records stay, and so does what deduplicates a
delivery that comes again."""

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Interval, literal, select, text, update
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.campaigns import repository as campaigns
from shared.cli import main
from shared.config import Settings, get_settings
from shared.db import get_sessionmaker, session_scope
from shared.models import Batch, Call, CallEvent, DispatchTurn, ExternalEvent, SmsMessage, SmsTurn
from shared.retention import jobs, repository
from shared.retention import service as retention_service
from shared.sms import repository as sms_repository
from tests import factories
from tests.api.conftest import KeyedClient
from tests.billing import direct
from tests.billing import stripe_events as se

OLD = timedelta(days=91)


def purge() -> retention_service.Purged:
    return retention_service.purge(retention_service.cutoff())


def age(
    model: type[CallEvent] | type[SmsMessage] | type[ExternalEvent], by: timedelta, **where: str
) -> None:
    column, value = next(iter(where.items()))
    with session_scope() as session:
        session.execute(
            update(model)
            .where(getattr(model, column) == value)
            .values(created_at=model.created_at - literal(by, Interval))
            .execution_options(synchronize_session=False)
        )


def signed(client: TestClient, path: str, params: dict[str, str]) -> httpx.Response:
    settings = get_settings()
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(
        settings.PUBLIC_BASE_URL + path, params
    )
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def call_callbacks(call_id: str, steps: int = 4) -> list[dict[str, str]]:
    start = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
    lifecycle = [("initiated", 0), ("ringing", 1), ("in-progress", 3), ("completed", 64)]
    callbacks = []
    for sequence, (status, offset) in enumerate(lifecycle[:steps]):
        params = {
            "CallSid": "CA" + call_id.replace("-", ""),
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(start + timedelta(seconds=offset)),
            "AccountSid": get_settings().TWILIO_ACCOUNT_SID,
        }
        if status == "completed":
            params["CallDuration"] = "61"
        callbacks.append(params)
    return callbacks


def placed_call(api: KeyedClient, steps: int = 4) -> str:
    """A call moved through its first `steps` status callbacks, as Twilio sends them."""
    response = api.post(
        "/api/make_toingg/",
        {"campaign": "welcome", "name": "Ada", "phoneNumber": factories.phone_number()},
    )
    assert response.status_code == 200, response.text
    call_id = str(response.json()["callId"])
    for params in call_callbacks(call_id, steps):
        response = signed(api.client, f"/api/twilio/call-status?callId={call_id}", params)
        assert response.status_code == 204, response.text
    return call_id


def event_params(call_id: str) -> list[dict[str, Any] | None]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(CallEvent.params)
                .where(CallEvent.call_id == call_id)
                .order_by(CallEvent.sequence_number)
            )
        )


def charged(call_id: str) -> tuple[int | None, int]:
    with session_scope() as session:
        row = session.execute(
            text("SELECT credits_charged, credits_reserved FROM calls WHERE id = :id"),
            {"id": call_id},
        ).one()
        return row[0], row[1]


class TestCalls:
    def test_old_events_lose_their_parameters_and_the_call_keeps_the_rest(
        self, api: KeyedClient
    ) -> None:
        old, young = placed_call(api), placed_call(api)
        old_before = api.get(f"/api/calls/{old}").json()
        old_charged = charged(old)
        young_params = event_params(young)
        age(CallEvent, OLD, call_id=old)

        assert purge().call_event_params >= 4

        assert event_params(old) == [None] * 4
        assert event_params(young) == young_params
        assert all(params and params["CallSid"] for params in young_params)
        response = api.get(f"/api/calls/{old}")
        assert response.status_code == 200, response.text
        assert response.json() == old_before  # status, duration, times and timeline
        assert old_before["status"] == "completed"
        assert old_before["durationSeconds"] == 61
        assert [step["status"] for step in old_before["timeline"]] == [
            "queued", "initiated", "ringing", "in-progress", "completed",
        ]  # fmt: skip
        assert charged(old) == old_charged
        assert api.get("/api/calls", status="completed", limit=100).status_code == 200

    def test_a_callback_delivered_again_after_the_purge_is_still_applied_once(
        self, api: KeyedClient
    ) -> None:
        call_id = placed_call(api, steps=2)  # ringing
        age(CallEvent, OLD, call_id=call_id)
        purge()
        callbacks = call_callbacks(call_id)
        for params in callbacks[:2]:  # Twilio delivers the first two again
            response = signed(api.client, f"/api/twilio/call-status?callId={call_id}", params)
            assert response.status_code == 204
        # Each SequenceNumber is still stored once, and the repeats stored nothing again.
        assert event_params(call_id) == [None, None]
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "ringing"

        signed(api.client, f"/api/twilio/call-status?callId={call_id}", callbacks[2])
        call = api.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "in-progress"
        assert [step.get("sequenceNumber") for step in call["timeline"]] == [None, 0, 1, 2]


def sent_sms(api: KeyedClient, status: str | None) -> str:
    """An SMS accepted, and moved to `status` by Twilio's callback (None: still queued)."""
    response = api.post(
        "/api/send_sms",
        {"name": "Ada", "phoneNumber": factories.phone_number(), "message": "Your code is 1234"},
    )
    assert response.status_code == 200, response.text
    sms_id = str(response.json()["smsId"])
    if status is not None:
        params = {"MessageSid": "SM" + sms_id.replace("-", ""), "MessageStatus": status}
        response = signed(api.client, f"/api/twilio/sms-status?smsId={sms_id}", params)
        assert response.status_code == 204, response.text
    return sms_id


class TestSms:
    def test_old_messages_twilio_has_lose_their_body_and_keep_the_rest(
        self, api: KeyedClient
    ) -> None:
        delivered, queued, young = (
            sent_sms(api, "delivered"), sent_sms(api, None), sent_sms(api, "delivered"),
        )  # fmt: skip
        age(SmsMessage, OLD, id=delivered)
        age(SmsMessage, OLD, id=queued)
        before = {sms_id: api.get(f"/api/sms/{sms_id}").json() for sms_id in (delivered, young)}
        balance = api.get("/api/credits").json()["balance"]

        assert purge().sms_bodies >= 1

        response = api.get(f"/api/sms/{delivered}")
        assert response.status_code == 200, response.text
        assert response.json() == {**before[delivered], "message": None}
        assert before[delivered]["status"] == "delivered"
        assert before[delivered]["segments"] == 1
        # Still to be sent: it keeps what it is to say.
        assert api.get(f"/api/sms/{queued}").json()["message"] == "Your code is 1234"
        assert api.get(f"/api/sms/{young}").json() == before[young]
        assert api.get("/api/credits").json()["balance"] == balance

    def test_the_purge_waits_for_no_one_and_takes_a_held_row_next_time(
        self, api: KeyedClient
    ) -> None:
        sms_id = sent_sms(api, "delivered")
        age(SmsMessage, OLD, id=sms_id)
        # A late status callback holds the message's row while the purge runs.
        with held("SELECT 1 FROM sms_messages WHERE id = :id FOR UPDATE", id=sms_id):
            done = threading.Event()
            worker = threading.Thread(target=lambda: (purge(), done.set()), daemon=True)
            worker.start()
            assert done.wait(15), "the purge waited for a row someone holds"
            assert api.get(f"/api/sms/{sms_id}").json()["message"] is not None
        purge()
        assert api.get(f"/api/sms/{sms_id}").json()["message"] is None


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


def payload_of(row_id: str) -> dict[str, Any] | None:
    with session_scope() as session:
        return session.scalar(select(ExternalEvent.payload).where(ExternalEvent.id == row_id))


def webhook(client: TestClient, event: dict[str, Any]) -> httpx.Response:
    body = json.dumps(event)
    signature = se.sign(body, get_settings().STRIPE_WEBHOOK_SECRET)
    return client.post(
        "/api/webhook",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )


class TestStripeEvents:
    def test_an_applied_event_purged_is_never_applied_again(self, client: TestClient) -> None:
        account_id, _ = factories.account()
        checkout_id, stripe_id = factories.checkout(account_id, credits=100)
        event = se.checkout_completed(
            stripe_id, checkout_id, account_id, 100, payment_intent="pi_" + secrets.token_hex(8)
        )
        row_id = direct.store(event)
        assert direct.apply(row_id).endswith("credited 100")
        age(ExternalEvent, OLD, id=row_id)

        assert purge().stripe_payloads >= 1
        assert payload_of(row_id) is None

        # Stripe delivers it again: the id it keeps recognises it.
        response = webhook(client, event)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "duplicate": True}
        assert direct.apply(row_id) == "nothing to do"
        with session_scope() as session:
            rows = session.scalars(
                select(ExternalEvent).where(ExternalEvent.external_id == event["id"])
            ).all()
            assert [(row.id, row.type, row.handled_at is not None) for row in rows] == [
                (row_id, "checkout.session.completed", True)
            ]
        assert direct.balance(account_id) == 100

    def test_events_still_to_apply_keep_their_payload_and_dead_ones_lose_it(self) -> None:
        waiting = direct.store(
            se.charge_refunded("pi_" + secrets.token_hex(8), 1000, 500, "ch_waiting")
        )
        assert "pending" in direct.apply(waiting)
        dead = direct.store(se.charge_refunded("pi_" + secrets.token_hex(8), 1000, 500, "ch_dead"))
        assert "pending" in direct.apply(dead)
        young = direct.paid()
        with session_scope() as session:
            session.execute(
                update(ExternalEvent)
                .where(ExternalEvent.id == dead)
                .values(dead_at=ExternalEvent.created_at)
            )
        age(ExternalEvent, OLD, id=waiting)
        age(ExternalEvent, OLD, id=dead)

        purge()

        assert payload_of(waiting) is not None
        assert payload_of(dead) is None
        assert direct.apply(dead).startswith("charge.refunded: dead")
        with session_scope() as session:
            young_payloads = session.scalars(
                select(ExternalEvent.payload).where(
                    ExternalEvent.payload[("data", "object", "payment_intent")].as_string()
                    == young.payment_intent
                )
            ).all()
        assert len(young_payloads) == 1


class TestBatches:
    def test_each_batch_is_a_transaction_of_its_own(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        call_id = placed_call(api)  # 4 events
        age(CallEvent, timedelta(days=400), call_id=call_id)
        step = repository.empty_call_event_params
        seen: list[tuple[int, int]] = []  # (emptied before this batch, by this batch)

        def spy(session: Session, cutoff: datetime, limit: int) -> int:
            committed = event_params(call_id).count(None)  # read by another session
            emptied = step(session, cutoff, limit)
            seen.append((committed, emptied))
            return emptied

        monkeypatch.setattr(repository, "empty_call_event_params", spy)
        purged = retention_service.purge(datetime.now(UTC) - timedelta(days=399), batch=3)

        assert purged.call_event_params == 4
        assert seen == [(0, 3), (3, 1)]
        assert event_params(call_id) == [None] * 4


def turn_group(account_id: str, status: str | None, batch: bool, served_ago: timedelta) -> str:
    """A group of the account's calls (a batch, or its single calls) holding one call in
    `status` (none when None), last served by the dispatcher `served_ago`; its batch id, or
    "" for the single calls."""
    with session_scope() as session:
        campaign = campaigns.get_by_name(session, account_id, "welcome")
        assert campaign is not None
        batch_id = None
        if batch:
            row = Batch(account_id=account_id, campaign_id=campaign.id, status="running", total=1)
            session.add(row)
            session.flush()
            batch_id = row.id
        if status is not None:
            session.add(
                Call(
                    account_id=account_id,
                    batch_id=batch_id,
                    to_number=factories.phone_number(),
                    status=status,
                    **calls_service.accepted_terms(session, campaign),
                )
            )
        session.flush()
        calls_repository.note_served(session, account_id, {batch_id})
        session.execute(
            update(DispatchTurn)
            .where(
                DispatchTurn.account_id == account_id,
                DispatchTurn.batch_id.is_not_distinct_from(batch_id),
            )
            .values(served_at=datetime.now(UTC) - served_ago)
        )
    return batch_id or ""


def turns_of(account_id: str) -> set[str]:
    with session_scope() as session:
        return {
            batch_id or ""
            for batch_id in session.scalars(
                select(DispatchTurn.batch_id).where(DispatchTurn.account_id == account_id)
            )
        }


def sms_turn(status: str | None, served_ago: timedelta) -> str:
    account_id, _ = factories.account(credits=10)
    with session_scope() as session:
        if status is not None:
            session.add(
                SmsMessage(
                    account_id=account_id,
                    to_number=factories.phone_number(),
                    from_number=get_settings().TWILIO_FROM_NUMBER,
                    body="hello",
                    status=status,
                )
            )
        sms_repository.note_served(session, [account_id])
        session.execute(
            update(SmsTurn)
            .where(SmsTurn.account_id == account_id)
            .values(served_at=datetime.now(UTC) - served_ago)
        )
    return account_id


def has_sms_turn(account_id: str) -> bool:
    with session_scope() as session:
        return session.get(SmsTurn, account_id) is not None


class TestDispatchTurns:
    """The dispatchers keep when each group last had its turn; the hourly purge deletes the
    turns of groups that owe nothing and were last served over an hour ago, which would
    otherwise stay for good (every batch ever dialed kept its row)."""

    def test_idle_groups_lose_their_turn_and_groups_owed_calls_keep_it(
        self, api: KeyedClient
    ) -> None:
        account = api.account_id
        long_ago, lately = timedelta(hours=2), timedelta(minutes=10)
        finished = turn_group(account, "completed", batch=True, served_ago=long_ago)
        emptied = turn_group(account, None, batch=True, served_ago=long_ago)
        queued = turn_group(account, "queued", batch=True, served_ago=long_ago)
        just_finished = turn_group(account, "canceled", batch=True, served_ago=lately)
        waiting = turn_group(account, "insufficient-credits", batch=True, served_ago=long_ago)
        singles = turn_group(account, "scheduled", batch=False, served_ago=long_ago)
        assert turns_of(account) == {finished, emptied, queued, just_finished, waiting, singles}

        assert purge().dispatch_turns >= 2

        assert turns_of(account) == {queued, just_finished, waiting, singles}
        # Its single calls ended too: their turn goes as well.
        other, _ = factories.account(credits=10)
        factories.campaign(other, name="welcome")
        done = turn_group(other, "completed", batch=False, served_ago=long_ago)
        assert turns_of(other) == {done}
        purge()
        assert turns_of(other) == set()

    def test_idle_accounts_lose_their_sms_turn_and_accounts_owed_messages_keep_it(
        self,
    ) -> None:
        long_ago, lately = timedelta(hours=2), timedelta(minutes=10)
        idle = sms_turn("delivered", served_ago=long_ago)
        owed = sms_turn("queued", served_ago=long_ago)
        recent = sms_turn(None, served_ago=lately)

        assert purge().sms_turns >= 1

        assert (has_sms_turn(idle), has_sms_turn(owed), has_sms_turn(recent)) == (
            False,
            True,
            True,
        )


class TestOperators:
    def test_toingg_purge_before_a_date(
        self, api: KeyedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        older, newer = placed_call(api), placed_call(api)
        age(CallEvent, timedelta(days=200), call_id=older)
        age(CallEvent, timedelta(days=95), call_id=newer)
        before = (datetime.now(UTC) - timedelta(days=150)).date().isoformat()

        assert main(["purge", "--before", before]) == 0

        assert f"before {before}T00:00:00+00:00" in capsys.readouterr().out
        assert event_params(older) == [None] * 4
        assert None not in event_params(newer)

    def test_a_date_that_is_none_is_refused_naming_it(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exited:
            main(["purge", "--before", "last spring"])
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert "--before" in error and "'last spring' is not a date" in error

    def test_beat_runs_the_purge_hourly(self) -> None:
        from workers.celery_app import app

        [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == jobs.PURGE]
        assert entry["schedule"] <= 3600
        assert "workers.tasks.retention" in app.conf.include

    def test_retention_is_at_least_a_day(self) -> None:
        assert Settings().RETENTION_DAYS == 90
        with pytest.raises(ValidationError, match="RETENTION_DAYS"):
            Settings(RETENTION_DAYS=0)
