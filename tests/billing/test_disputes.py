"""Disputes, applied as a worker applies Stripe's events: what a dispute takes back, what a won
dispute gives back (once, whatever the order and repeats of its events), and the block."""

import itertools
import random
import secrets
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from shared.db import session_scope
from shared.models import Account, CreditEntry, ExternalEvent
from tests.billing import direct
from tests.billing import stripe_events as se

OPENED = ("charge.dispute.created", "needs_response")
WITHDRAWN = ("charge.dispute.funds_withdrawn", "needs_response")
WON = ("charge.dispute.closed", "won")
REINSTATED = ("charge.dispute.funds_reinstated", "won")


def dispute_rows(checkout_id: str) -> list[tuple[str, int]]:
    with session_scope() as session:
        rows = session.scalars(
            select(CreditEntry)
            .where(
                CreditEntry.subject_id == checkout_id,
                CreditEntry.reason.like("dispute%"),
            )
            .order_by(CreditEntry.created_at)
        )
        return [(row.reason, row.delta) for row in rows]


def disputed(account_id: str) -> bool:
    with session_scope() as session:
        account = session.get(Account, account_id)
        assert account is not None
        return account.disputed


def send(
    payment: direct.Payment, kind: tuple[str, str], dispute_id: str, amount: int = 1000
) -> str:
    event_type, status = kind
    return direct.deliver(
        se.dispute(event_type, payment.payment_intent, amount, status, dispute_id)
    )


class TestWonDispute:
    def test_gives_back_what_was_taken_once_in_every_order_and_repeat(self) -> None:
        for order in itertools.permutations([OPENED, WITHDRAWN, WON, REINSTATED]):
            payment = direct.paid(credits=100)
            dispute_id = "dp_" + secrets.token_hex(8)
            # Each kind twice, as separate deliveries (new event ids), in a shuffled order.
            deliveries = list(order) + random.Random(str(order)).sample(order, len(order))
            for kind in deliveries:
                send(payment, kind, dispute_id)
            assert direct.balance(payment.account_id) == 100, order
            assert sorted(dispute_rows(payment.checkout_id)) == [
                ("dispute", -100),
                ("dispute_reinstated", 100),
            ], order
            assert disputed(payment.account_id) is False, order

    def test_closed_and_reinstated_applied_at_once_give_back_once(self) -> None:
        payment = direct.paid(credits=100)
        dispute_id = "dp_" + secrets.token_hex(8)
        send(payment, OPENED, dispute_id)
        assert direct.balance(payment.account_id) == 0
        rows = [
            direct.store(se.dispute(t, payment.payment_intent, 1000, s, dispute_id))
            for t, s in [WON, REINSTATED] * 4
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(direct.apply, rows))
        assert direct.balance(payment.account_id) == 100
        assert dispute_rows(payment.checkout_id) == [("dispute", -100), ("dispute_reinstated", 100)]
        with session_scope() as session:
            handled = session.scalars(
                select(ExternalEvent.handled_at).where(ExternalEvent.id.in_(rows))
            )
            assert all(at is not None for at in handled)


class TestOtherOutcomes:
    def test_a_lost_dispute_keeps_what_it_took_and_lifts_the_block(self) -> None:
        payment = direct.paid(credits=100)
        dispute_id = "dp_" + secrets.token_hex(8)
        send(payment, OPENED, dispute_id)
        assert disputed(payment.account_id) is True
        send(payment, ("charge.dispute.closed", "lost"), dispute_id)
        assert direct.balance(payment.account_id) == 0
        assert disputed(payment.account_id) is False

    def test_an_inquiry_closed_without_a_chargeback_gives_back(self) -> None:
        payment = direct.paid(credits=100)
        dispute_id = "dp_" + secrets.token_hex(8)
        send(payment, ("charge.dispute.created", "warning_needs_response"), dispute_id)
        assert direct.balance(payment.account_id) == 0
        send(payment, ("charge.dispute.closed", "warning_closed"), dispute_id)
        assert direct.balance(payment.account_id) == 100
        assert disputed(payment.account_id) is False

    def test_a_partly_won_dispute_gives_back_only_what_was_refunded_before(self) -> None:
        # Refunded 30%, then disputed in full and lost: Stripe gives back the refunded part
        # (charge.dispute.funds_reinstated, status lost), which the refund already took back.
        payment = direct.paid(credits=100)
        direct.deliver(
            se.charge_refunded(payment.payment_intent, 1000, 300, "ch_" + secrets.token_hex(6))
        )
        dispute_id = "dp_" + secrets.token_hex(8)
        send(payment, OPENED, dispute_id)
        assert direct.balance(payment.account_id) == -30
        for kind in [
            ("charge.dispute.funds_reinstated", "lost"),
            ("charge.dispute.closed", "lost"),
        ] * 2:
            send(payment, kind, dispute_id)
        assert direct.balance(payment.account_id) == 0

    def test_a_late_opening_event_does_not_block_again(self) -> None:
        payment = direct.paid(credits=100)
        dispute_id = "dp_" + secrets.token_hex(8)
        send(payment, WON, dispute_id)
        send(payment, OPENED, dispute_id)
        assert disputed(payment.account_id) is False
        assert direct.balance(payment.account_id) == 100

    def test_the_block_stays_while_another_dispute_is_open(self) -> None:
        account_id = direct.paid(credits=100).account_id
        first, second = direct.paid(account_id), direct.paid(account_id)
        first_id, second_id = "dp_" + secrets.token_hex(8), "dp_" + secrets.token_hex(8)
        send(first, OPENED, first_id)
        send(second, OPENED, second_id)
        send(first, WON, first_id)
        assert disputed(account_id) is True
        send(second, WON, second_id)
        assert disputed(account_id) is False
        assert direct.balance(account_id) == 300
