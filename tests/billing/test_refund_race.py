"""Refunds of one payment applied at the same moment, on PostgreSQL: the interleaving is forced by
holding the first application's transaction open right after it has read what was taken back."""

import secrets
import threading
from collections.abc import Callable

import pytest

from shared.billing import ledger
from shared.db import session_scope
from tests.billing import direct
from tests.billing import stripe_events as se


def _run(target: Callable[[], object], name: str, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


class TestConcurrentRefunds:
    def test_two_refunds_at_once_take_back_at_most_what_was_paid(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        payment = direct.paid(credits=100)
        charge_id = "ch_" + secrets.token_hex(6)
        # Stripe's charge.refunded carries the charge's total refunded so far: a half refund,
        # then the rest. Applied one after the other they take back 50, then 50 more.
        half = direct.store(se.charge_refunded(payment.payment_intent, 1000, 500, charge_id))
        whole = direct.store(se.charge_refunded(payment.payment_intent, 1000, 1000, charge_id))

        has_read = threading.Event()
        go_on = threading.Event()
        read_taken = ledger.total_for_subject

        def held_after_reading(*args: object, **kwargs: object) -> int:
            taken = read_taken(*args, **kwargs)  # type: ignore[arg-type]
            if threading.current_thread().name == "whole":
                has_read.set()
                go_on.wait(30)
            return taken

        monkeypatch.setattr(ledger, "total_for_subject", held_after_reading)
        errors: list[BaseException] = []
        first = _run(lambda: direct.apply(whole), "whole", errors)
        assert has_read.wait(20), "the first refund never read what was taken back"
        second = _run(lambda: direct.apply(half), "half", errors)
        # Unserialized, the second runs to its commit meanwhile; serialized, it waits for the
        # first one's lock until the first is let go.
        second.join(timeout=3)
        go_on.set()
        first.join(timeout=30)
        second.join(timeout=30)
        assert not first.is_alive() and not second.is_alive()
        assert errors == []

        with session_scope() as session:
            taken = -ledger.total_for_subject(
                session, "checkout_session", payment.checkout_id, "refund"
            )
        assert taken == 100
        assert direct.balance(payment.account_id) == 0
