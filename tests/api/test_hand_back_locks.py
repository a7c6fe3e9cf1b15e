"""A worker handing a call back to its batch (Twilio throttled the creation) while another
worker claims a call of the same batch: neither waits for the other in a cycle.

Seen in the carrier-faults drill: the hand-back locked the batch's row, then waited for the
account's row; a claim held the account's row, and its next update of the call checked the
call's foreign key to the batch, which waits for any lock stronger than a share on that row.
PostgreSQL broke each cycle after a second, failing one of the two.
"""

import threading
from collections.abc import Callable

from sqlalchemy import select, text

from shared.calls import service as calls_service
from shared.db import get_engine, session_scope
from shared.models import Call
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import wait_until


def _waiting_for_locks() -> int:
    with get_engine().connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def _in_thread(work: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class TestAHandBackWhileACallIsClaimed:
    def test_neither_fails(self, api: KeyedClient) -> None:
        numbers = [factories.phone_number(), factories.phone_number()]
        batch_id = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "welcome", "numberList": [{"clientNumber": n} for n in numbers]},
        ).json()["batchId"]
        with session_scope() as session:
            handed_back, claimed_alone = session.scalars(
                select(Call.id).where(Call.batch_id == batch_id).order_by(Call.to_number)
            )
            [claimed] = calls_service.claim(session, api.account_id, [handed_back])
        with session_scope() as session:
            plan = calls_service.take(session, handed_back, claimed.attempt)
        assert plan is not None

        def hand_back() -> None:
            with session_scope() as session:
                calls_service.release(session, plan)

        def claim_alone() -> None:  # a dial task sent without a claim, as a retry is
            with session_scope() as session:
                assert calls_service.take(session, claimed_alone, None) is not None

        errors: list[BaseException] = []
        with get_engine().connect() as holder:
            # The claim locks the account's row, then waits here for the call's row...
            holder.execute(select(Call.id).where(Call.id == claimed_alone).with_for_update())
            claiming = _in_thread(claim_alone, errors)
            wait_until(lambda: _waiting_for_locks() == 1, 10, message="the claim waits")
            # ...while the hand-back locks the batch's row and waits for the account's.
            handing_back = _in_thread(hand_back, errors)
            wait_until(lambda: _waiting_for_locks() == 2, 10, message="the hand-back waits")
            holder.rollback()
        claiming.join(timeout=30)
        handing_back.join(timeout=30)
        assert errors == []
        shown = api.get(f"/api/batches/{batch_id}").json()
        assert shown["counts"] == {"queued": 1, "dialing": 1}
