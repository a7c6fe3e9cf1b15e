"""The dispatcher's claim of an account's calls while a cancel of their batch is under way: the
two lock the same calls, in one order, so neither waits for the other in a circle.

Seen on PostgreSQL: the claim's update walked the calls by their ids (the primary key), the
cancel's by where they are stored (the batch's index); each locked a call the other wanted next,
and PostgreSQL broke the circle after a second by failing one of them.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared.batches import service as batches_service
from shared.calls import lifecycle as calls_lifecycle
from shared.calls import service as calls_service
from shared.campaigns import repository as campaigns
from shared.db import get_engine, session_scope
from shared.models import Batch, Call, utcnow
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer


def _plans_walking_indexes(session: Session) -> None:
    # The plans PostgreSQL picks on a table of production size: each statement walks an index
    # (a claim the primary key, a cancel the batch's), not the few pages of a test's table.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    session.execute(text("SET LOCAL enable_bitmapscan = off"))


def _batch_of(customer: KeyedClient, call_ids: list[str], handed: list[datetime]) -> str:
    """A running batch whose calls have these ids and were last handed out at these times (their
    tasks lost), stored in this order."""
    with session_scope() as session:
        campaign = campaigns.get_by_name(session, customer.account_id, "welcome")
        assert campaign is not None
        batch = Batch(
            account_id=customer.account_id,
            campaign_id=campaign.id,
            status="running",
            total=len(call_ids),
        )
        session.add(batch)
        session.flush()
        terms = calls_service.accepted_terms(session, campaign)
        now = utcnow()
        rows = [
            {"id": call_id, "account_id": customer.account_id, "batch_id": batch.id,
             "to_number": factories.phone_number(), "name": "", **terms, "status": "queued",
             "handed_at": handed_at, "created_at": now, "updated_at": now}
            for call_id, handed_at in zip(call_ids, handed, strict=True)
        ]  # fmt: skip
        calls_lifecycle.accept_rows(session, rows)
        return batch.id


class TestAClaimAndACancelAtOnce:
    def test_neither_fails_and_the_batch_is_canceled_whole(self, api: KeyedClient) -> None:
        prefix = str(uuid.uuid4())[:34]
        # Stored in this order; their ids, and the times they were handed out, sort z first.
        x, y, z = f"{prefix}-2", f"{prefix}-3", f"{prefix}-1"
        hour_ago = utcnow() - timedelta(hours=1)
        batch_id = _batch_of(api, [x, y, z], [hour_ago, hour_ago, hour_ago - timedelta(hours=1)])
        with session_scope() as session:
            stored = session.scalars(
                select(Call.id).where(Call.batch_id == batch_id).order_by(text("ctid"))
            )
            assert list(stored) == [x, y, z]

        def cancel(session: Session) -> int:
            _plans_walking_indexes(session)
            batch = session.get(Batch, batch_id)
            assert batch is not None
            return batches_service.cancel(session, batch, hang_up=False)

        def claim(session: Session) -> list[calls_service.DialPlan]:
            _plans_walking_indexes(session)
            return calls_service.claim(session, api.account_id, [x, z])

        with get_engine().connect() as holder:
            # The cancel is held between its calls' row locks, at y.
            holder.execute(select(Call.id).where(Call.id == y).with_for_update())
            canceling = Racer(cancel)
            canceling.wait_until_blocked()
            # The dispatcher claims the account's share meanwhile, and waits for the cancel.
            claiming = Racer(claim)
            claiming.wait_until_blocked()
            holder.rollback()
        assert canceling.join() == 3
        assert claiming.join() == []
        shown = api.get(f"/api/batches/{batch_id}").json()
        assert shown["status"] == "canceled"
        assert shown["counts"] == {"canceled": 3}
        assert api.get("/api/credits").json()["balance"] == 100


class TestACancelThatHangsUpWhileTheHangUpSweeperRuns:
    def test_neither_fails_and_every_live_call_is_hung_up(self, api: KeyedClient) -> None:
        # Hang-ups owed since Twilio was away (a sweeper hands them out again), and the customer
        # cancels the batch, hanging up its live calls. Their ids sort x, y, z; stored y, z, x
        # (the cancel finds them in that order, by the batch's index); x claimed first (the
        # sweeper finds it first, by the index of statuses and claim times).
        prefix = str(uuid.uuid4())[:34]
        x, y, z = f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"
        hour_ago = utcnow() - timedelta(hours=1)
        batch_id = _batch_of(api, [y, z, x], [hour_ago, hour_ago, hour_ago - timedelta(hours=1)])
        owed = {x: hour_ago, y: hour_ago + timedelta(minutes=1)}
        with session_scope() as session:
            for call_id in (y, z, x):  # each row written anew, in the order they are stored
                session.execute(
                    update(Call)
                    .where(Call.id == call_id)
                    .values(
                        status="in-progress",
                        twilio_sid=f"CA{uuid.uuid4().hex}",
                        hangup_requested=call_id in owed,
                        hangup_handed_at=owed.get(call_id),
                    )
                )

        def cancel(session: Session) -> int:
            _plans_walking_indexes(session)
            batch = session.get(Batch, batch_id)
            assert batch is not None
            return batches_service.cancel(session, batch, hang_up=True)

        def sweep(session: Session) -> int:
            _plans_walking_indexes(session)
            return calls_service.resend_hang_ups(session, utcnow() - timedelta(seconds=30))

        with get_engine().connect() as holder:
            # The cancel is held between its hang-ups, at z.
            holder.execute(select(Call.id).where(Call.id == z).with_for_update())
            canceling = Racer(cancel)
            canceling.wait_until_blocked()
            # The sweeper hands out the owed hang-ups meanwhile, and waits for the cancel.
            sweeping = Racer(sweep)
            sweeping.wait_until_blocked()
            holder.rollback()
        canceling.join()
        sweeping.join()
        with session_scope() as session:
            asked = session.scalars(
                select(Call.hangup_requested).where(Call.batch_id == batch_id)
            ).all()
        assert asked == [True, True, True]
        assert api.get(f"/api/batches/{batch_id}").json()["status"] == "canceled"
