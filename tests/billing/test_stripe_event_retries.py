"""Stripe events that cannot be applied: each attempt is counted and the next one waits longer;
after STRIPE_EVENT_MAX_ATTEMPTS the event is dead with its reason, listed by `toingg events dead`,
and the retry scan never lets older stuck or dead events starve newer ones."""

import itertools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from shared import queue
from shared.billing import jobs
from shared.config import get_settings
from shared.db import session_scope
from shared.models import CheckoutSession, ExternalEvent, utcnow
from tests import factories
from tests.billing import direct
from tests.billing import stripe_events as se
from workers.tasks import billing as billing_tasks


def row(row_id: str) -> ExternalEvent:
    with session_scope() as session:
        found = session.get(ExternalEvent, row_id)
        assert found is not None
        return found


def foreign_refund() -> dict[str, Any]:
    """A refund of a charge that is not one of ours: it can never apply."""
    pi = "pi_" + secrets.token_hex(8)
    return se.charge_refunded(pi, 1000, 1000, "ch_" + secrets.token_hex(6))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks sent to the broker, kept here instead."""
    kept: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(queue, "send_now", lambda name, *args: kept.append((name, args)))
    return kept


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Rows this test leaves unapplied are removed, so no later scan keeps retrying them."""
    ids: list[str] = []
    yield ids
    with session_scope() as session:
        session.execute(delete(ExternalEvent).where(ExternalEvent.id.in_(ids)))


def scan(sent: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    sent.clear()
    billing_tasks.retry_pending()
    return [args[0] for name, args in sent if name == jobs.APPLY_EVENT]


class TestAttempts:
    def test_an_event_that_never_applies_ends_dead_after_the_limit_with_its_reason(
        self, sent: list[tuple[str, tuple[Any, ...]]], cleanup: list[str]
    ) -> None:
        limit = get_settings().STRIPE_EVENT_MAX_ATTEMPTS
        event = foreign_refund()
        row_id = direct.store(event)
        cleanup.append(row_id)
        delays = []
        for attempt in range(1, limit):
            before = utcnow()
            assert "pending" in direct.apply(row_id)
            stuck = row(row_id)
            assert stuck.attempts == attempt and stuck.dead_at is None
            assert stuck.handled_at is None
            assert stuck.next_attempt_at is not None
            delays.append((stuck.next_attempt_at - before).total_seconds())
            assert row_id not in scan(sent)  # not due again yet
        # Each wait is longer than the one before, up to a ceiling.
        assert delays[0] == pytest.approx(60, abs=5)
        assert all(b >= a - 1 for a, b in itertools.pairwise(delays))
        assert delays[-1] > delays[0] * 10

        outcome = direct.apply(row_id)
        dead = row(row_id)
        assert "dead" in outcome
        assert dead.attempts == limit and dead.dead_at is not None and dead.handled_at is None
        assert dead.pending_reason is not None and "is not credited yet" in dead.pending_reason
        # Dead is final: not scanned, and applying it again changes nothing.
        with session_scope() as session:
            session.execute(
                update(ExternalEvent)
                .where(ExternalEvent.id == row_id)
                .values(next_attempt_at=utcnow() - timedelta(days=1))
            )
        assert row_id not in scan(sent)
        direct.apply(row_id)
        assert row(row_id).attempts == limit

        listed = subprocess.run(
            [sys.executable, "-m", "shared.cli", "events", "dead", "--json"],
            env=os.environ, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        [mine] = [e for e in json.loads(listed.stdout) if e["eventId"] == event["id"]]
        assert mine["type"] == "charge.refunded"
        assert mine["attempts"] == limit
        assert "is not credited yet" in mine["reason"]

    def test_a_handler_that_raises_is_counted_and_retried_later(self, cleanup: list[str]) -> None:
        payment = direct.paid(credits=100)
        charge = se.fixture("charge", payment_intent=payment.payment_intent, amount_refunded=500)
        del charge["amount"]  # a payload this code cannot read
        row_id = direct.store(se.event("charge.refunded", charge))
        cleanup.append(row_id)
        direct.apply(row_id)
        failed = row(row_id)
        assert failed.attempts == 1 and failed.handled_at is None and failed.dead_at is None
        assert failed.pending_reason is not None and "KeyError" in failed.pending_reason
        assert failed.next_attempt_at is not None and failed.next_attempt_at > utcnow()

    def test_a_session_we_did_not_make_credits_nothing_whatever_its_metadata_names(
        self, cleanup: list[str]
    ) -> None:
        # A paid session with an id no checkout of ours was given, its metadata naming one of
        # our open checkouts: as a sandbox signing with the real webhook secret would send it.
        account_id, _ = factories.account()
        checkout_id, _ = factories.checkout(account_id, credits=100)
        foreign = se.checkout_completed(
            "cs_test_" + secrets.token_hex(12), checkout_id, account_id, 100,
            payment_intent="pi_" + secrets.token_hex(8),
        )  # fmt: skip
        row_id = direct.store(foreign)
        cleanup.append(row_id)
        assert "is not one of ours" in direct.apply(row_id)
        assert direct.balance(account_id) == 0
        with session_scope() as session:
            checkout = session.get(CheckoutSession, checkout_id)
            assert checkout is not None and checkout.status == "open"


class TestScan:
    def test_a_newer_event_is_applied_behind_600_stuck_older_ones(
        self, sent: list[tuple[str, tuple[Any, ...]]], cleanup: list[str]
    ) -> None:
        # 600 events that can never apply, an hour old, each tried once (as a worker did).
        with session_scope() as session:
            for _ in range(600):
                event = foreign_refund()
                stuck = ExternalEvent(
                    source="stripe", external_id=event["id"], type=event["type"], payload=event,
                    created_at=utcnow() - timedelta(hours=1),
                )  # fmt: skip
                session.add(stuck)
                session.flush()
                cleanup.append(stuck.id)
        with session_scope() as session:
            from shared.billing import events

            for stuck_id in cleanup:
                events.apply(session, stuck_id)
        # A newer event whose message to the workers was lost: only the scan can apply it.
        account_id, _ = factories.account()
        checkout_id, stripe_id = factories.checkout(account_id, credits=100)
        newer = direct.store(
            se.checkout_completed(
                stripe_id, checkout_id, account_id, 100, payment_intent="pi_" + secrets.token_hex(8)
            )
        )
        assert newer in scan(sent)
        direct.apply(newer)
        assert direct.balance(account_id) == 100

    def test_scans_piled_up_before_a_worker_runs_them_count_one_attempt(
        self, sent: list[tuple[str, tuple[Any, ...]]], cleanup: list[str]
    ) -> None:
        # A refund that came before its payment is credited: it waits, and must still be alive
        # when the payment is. Beat sends a scan every minute whether or not workers run, so
        # after an outage as many scans as the attempt limit run back to back, each sending the
        # same due event before any of its tasks has run.
        payment_intent = "pi_" + secrets.token_hex(8)
        row_id = direct.store(se.charge_refunded(payment_intent, 1000, 1000, "ch_" + "x" * 8))
        cleanup.append(row_id)
        queued = []
        for _ in range(get_settings().STRIPE_EVENT_MAX_ATTEMPTS + 1):
            sent.clear()
            billing_tasks.retry_pending()
            queued += [
                args for name, args in sent if name == jobs.APPLY_EVENT and args[0] == row_id
            ]
        assert len(queued) > 1
        for args in queued:
            billing_tasks.apply_event(*args)
        waiting = row(row_id)
        assert (waiting.attempts, waiting.dead_at) == (1, None)
        assert waiting.next_attempt_at > utcnow()
