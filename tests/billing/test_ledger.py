"""The ledger under concurrency, on PostgreSQL: many reservations at once never take a balance
below zero."""

from concurrent.futures import ThreadPoolExecutor

from shared.billing import ledger
from shared.db import session_scope
from shared.models import Account, new_id
from tests import factories


def reserve(account_id: str, amount: int) -> bool:
    try:
        with session_scope() as session:
            ledger.apply(
                session,
                ledger.Change(account_id, -amount, "call_reservation", "call", new_id(), new_id()),
                must_cover=True,
            )
        return True
    except ledger.InsufficientCredits:
        return False


class TestReservations:
    def test_fifty_concurrent_reservations_against_ten_covered(self) -> None:
        account_id, _ = factories.account(credits=50)
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda _: reserve(account_id, 5), range(50)))
        assert results.count(True) == 10
        with session_scope() as session:
            assert session.get(Account, account_id).credits == 0  # type: ignore[union-attr]
            assert ledger.ledger_sum(session, account_id) == 0

    def test_a_debit_the_balance_does_not_cover_changes_nothing(self) -> None:
        account_id, _ = factories.account(credits=3)
        assert reserve(account_id, 5) is False
        with session_scope() as session:
            assert ledger.balance_of(session, account_id) == 3
            _, total = ledger.page(session, account_id, 10, 0)
            assert total == 1  # the opening grant only


class TestReferences:
    def test_the_same_reference_applies_once(self) -> None:
        account_id, _ = factories.account()
        change = ledger.Change(account_id, 7, "checkout", "checkout_session", "cs", new_id())
        with ThreadPoolExecutor(max_workers=8) as pool:

            def grant(_: int) -> bool:
                with session_scope() as session:
                    return ledger.apply(session, change) is not None

            results = list(pool.map(grant, range(8)))
        assert results.count(True) == 1
        with session_scope() as session:
            assert ledger.balance_of(session, account_id) == 7
            assert ledger.ledger_sum(session, account_id) == 7

    def test_each_row_records_the_balance_after_it(self) -> None:
        account_id, _ = factories.account(credits=10)
        with session_scope() as session:
            ledger.apply(session, ledger.Change(account_id, -4, "sms_charge", "sms", "s", new_id()))
            ledger.apply(session, ledger.Change(account_id, 2, "sms_refund", "sms", "s", new_id()))
        with session_scope() as session:
            rows, _ = ledger.page(session, account_id, 10, 0)
            assert [(r.delta, r.balance_after) for r in reversed(rows)] == [
                (10, 10),
                (-4, 6),
                (2, 8),
            ]
