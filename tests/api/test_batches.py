import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared.batches import service as batches_service
from shared.batches import stops
from shared.calls import dispatcher, repository
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Batch, Call, utcnow
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer, terminate_backend
from tests.stack import Carrier


class TestMakeBatch:
    def test_reports_invalid_rows_and_calls_a_repeated_number_once(self, api: KeyedClient) -> None:
        numbers = [factories.phone_number() for _ in range(6)]
        rows = [{"clientName": f"c{i}", "clientNumber": n} for i, n in enumerate(numbers)]
        rows.insert(2, {"clientName": "bad", "clientNumber": "not a number"})
        rows.append({"clientName": "again", "clientNumber": numbers[0]})
        response = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["accepted"] == 6
        assert body["duplicates"] == 1
        assert body["rejected"] == [
            {
                "index": 2,
                "clientNumber": "not a number",
                "reason": "'not a number' is not a phone number",
            }
        ]
        batch = api.get(f"/api/batches/{body['batchId']}").json()
        assert batch["total"] == 6
        assert batch["counts"] == {"queued": 6}
        listed = api.get("/api/calls", batch=body["batchId"], limit=100).json()
        assert sorted(c["phoneNumber"] for c in listed["items"]) == sorted(numbers)

    def test_a_list_with_no_valid_number_is_422(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "welcome", "numberList": [{"clientName": "x", "clientNumber": "1"}]},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "numberList", 0, "clientNumber"]

    def test_empty_list_and_unknown_campaign(self, api: KeyedClient) -> None:
        empty = api.post("/api/make_batch_toingg", json={"campaign": "welcome", "numberList": []})
        assert empty.status_code == 422
        unknown = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "nope", "numberList": [{"clientNumber": "+14155552671"}]},
        )
        assert unknown.status_code == 404

    def test_another_accounts_batch_is_404(self, api: KeyedClient) -> None:
        batch_id = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "welcome", "numberList": [{"clientNumber": "+14155552671"}]},
        ).json()["batchId"]
        _, other_key = factories.account()
        response = api.client.get(f"/api/batches/{batch_id}", params={"apiKey": other_key})
        assert response.status_code == 404


def _claimed_call(api: KeyedClient) -> tuple[str, calls_service.DialPlan]:
    """A one-number batch whose call the dispatcher has claimed and sent to a worker, which has
    yet to take it: (batch, the claim)."""
    batch_id = api.post(
        "/api/make_batch_toingg",
        json={"campaign": "welcome", "numberList": [{"clientNumber": factories.phone_number()}]},
    ).json()["batchId"]
    with session_scope() as session:
        [call_id] = session.scalars(select(Call.id).where(Call.batch_id == batch_id))
        [claimed] = calls_service.claim(session, api.account_id, [call_id])
    return batch_id, claimed


def _held_call(api: KeyedClient) -> tuple[str, calls_service.DialPlan]:
    """A one-number batch whose call a worker has taken for dialing: (batch, the worker's plan)."""
    batch_id, claimed = _claimed_call(api)
    with session_scope() as session:
        plan = calls_service.take(session, claimed.call_id, claimed.attempt)
    assert plan is not None
    return batch_id, plan


def _dial_task(claimed: calls_service.DialPlan) -> str:
    """The worker's dial task for this claim, run here."""
    from workers.tasks import calls as call_tasks

    return call_tasks.dial(claimed.call_id, asdict(claimed))


def _hand_back(plan: calls_service.DialPlan) -> None:
    """What a worker does with its claim when it finds the batch's stop flag set."""
    with session_scope() as session:
        calls_service.release(session, plan)


class TestAWorkerHoldingACallWhenItsBatchStops:
    def test_a_call_handed_back_while_the_cancel_commits_is_canceled(
        self, api: KeyedClient
    ) -> None:
        batch_id, plan = _held_call(api)
        # A worker hands its call back (its slot refused, say) while the cancel is written but
        # not yet committed.
        with session_scope() as canceling:
            batch = canceling.get(Batch, batch_id)
            assert batch is not None
            batches_service.cancel(canceling, batch, hang_up=False)
            worker = threading.Thread(target=_hand_back, args=(plan,))
            worker.start()
            worker.join(timeout=1)  # done, or waiting for the cancel to commit
        worker.join()
        shown = api.get(f"/api/batches/{batch_id}").json()
        assert shown["status"] == "canceled"
        assert shown["counts"] == {"canceled": 1}

    def test_a_call_waiting_for_its_slot_goes_back_as_soon_as_its_batch_stops(self) -> None:
        batch_id = str(uuid.uuid4())
        threading.Timer(0.3, stops.mark_stopped, args=[batch_id]).start()
        started = time.monotonic()
        assert stops.wait_unless_stopped(batch_id, 10) is False
        assert time.monotonic() - started < 5, "it waited for its slot first"

    def test_a_call_of_a_running_batch_waits_out_its_slot(self) -> None:
        started = time.monotonic()
        assert stops.wait_unless_stopped(str(uuid.uuid4()), 0.6) is True
        assert time.monotonic() - started >= 0.6

    @pytest.mark.parametrize(("change", "left"), [("pause", "queued"), ("cancel", "canceled")])
    def test_a_stop_committed_after_the_last_look_at_the_flag_stops_the_create_request(
        self, change: str, left: str, api: KeyedClient, carrier: Carrier
    ) -> None:
        batch_id, plan = _held_call(api)
        # The worker's last look at the stop flag, at the end of its wait for the slot, saw
        # nothing; the change commits (and sets the flag) right after that look.
        assert not stops.is_stopped(batch_id)
        assert api.post(f"/api/batches/{batch_id}/{change}").status_code == 200
        with session_scope() as session:
            ends_by = calls_service.fence(session, plan)
            assert ends_by is None, (
                f"the fence lets the create request go after the {change} committed and "
                "answered: a call of a stopped batch starts"
            )
            assert calls_service.fenced_off(session, plan) is calls_service.Again.NO
        assert carrier.calls(to=plan.to) == []
        assert api.get(f"/api/batches/{batch_id}").json()["counts"] == {left: 1}

    def test_a_call_twilio_never_placed_is_canceled_with_its_canceled_batch(
        self, api: KeyedClient, carrier: Carrier
    ) -> None:
        # The worker's request to Twilio went unanswered, and the batch was canceled meanwhile.
        batch_id, plan = _held_call(api)
        assert api.post(f"/api/batches/{batch_id}/cancel").json()["status"] == "canceled"
        with session_scope() as session:
            call = session.get(Call, plan.call_id)
            assert call is not None
            call.dial_started_at = utcnow() - timedelta(minutes=1)  # past the grace period
        with session_scope() as session:
            assert calls_service.reconcile(session, plan.call_id) == "requeued"
        assert carrier.calls(to=plan.to) == []
        assert api.get(f"/api/batches/{batch_id}").json()["counts"] == {"canceled": 1}


class TestControlsAreConditional:
    def test_a_resume_that_read_paused_racing_a_cancel_leaves_it_canceled_dialing_nothing(
        self, api: KeyedClient, carrier: Carrier, api_server: str
    ) -> None:
        batch_id, claimed = _claimed_call(api)
        assert api.post(f"/api/batches/{batch_id}/pause").json()["status"] == "paused"

        def resume(session: Session) -> Batch:
            batch = session.get(Batch, batch_id)
            assert batch is not None and batch.status == "paused"  # read before the cancel
            return batches_service.resume(session, batch)

        with session_scope() as canceling:
            batch = canceling.get(Batch, batch_id)
            assert batch is not None
            batches_service.cancel(canceling, batch, hang_up=False)
            resuming = Racer(resume)
            resuming.wait_until_blocked()
        try:
            resuming.join()
            refused = False
        except batches_service.BatchIsOver:
            refused = True
        # The worker the claim was sent to, meanwhile.
        assert _dial_task(claimed).startswith("not ")
        assert carrier.calls(to=claimed.to) == []
        shown = api.get(f"/api/batches/{batch_id}").json()
        assert shown["status"] == "canceled"
        assert shown["counts"] == {"canceled": 1}
        assert refused, "the resume answered as if it had resumed"

    @pytest.mark.parametrize("change", ["pause", "cancel"])
    def test_a_change_whose_commit_fails_sets_no_stop_flag_and_the_batch_dials(
        self, change: str, api: KeyedClient, carrier: Carrier, api_server: str
    ) -> None:
        batch_id, claimed = _claimed_call(api)
        with pytest.raises(DBAPIError), session_scope() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            if change == "pause":
                batches_service.pause(session, batch)
            else:
                batches_service.cancel(session, batch, hang_up=False)
            terminate_backend(session)  # the commit that follows fails
        assert not stops.is_stopped(batch_id)
        assert _dial_task(claimed).startswith("CA")
        assert len(carrier.calls(to=claimed.to)) == 1

    @pytest.mark.parametrize(("change", "left"), [("pause", "queued"), ("cancel", "canceled")])
    def test_a_worker_that_misses_the_stop_flag_does_not_dial(
        self, change: str, left: str, api: KeyedClient, carrier: Carrier, api_server: str
    ) -> None:
        batch_id, claimed = _claimed_call(api)
        assert api.post(f"/api/batches/{batch_id}/{change}").status_code == 200
        stops.clear(batch_id)  # gone with a Redis restart
        assert _dial_task(claimed).startswith("not ")
        assert carrier.calls(to=claimed.to) == []
        assert api.get(f"/api/batches/{batch_id}").json()["counts"] == {left: 1}

    def test_a_stop_flag_the_database_does_not_bear_out_stops_one_call_once(
        self, api: KeyedClient, carrier: Carrier, api_server: str
    ) -> None:
        batch_id, claimed = _claimed_call(api)
        stops.mark_stopped(batch_id)  # a resume committed, and clearing its flag failed
        assert _dial_task(claimed).startswith("not placed")
        assert not stops.is_stopped(batch_id)
        with session_scope() as session:
            [again] = calls_service.claim(session, api.account_id, [claimed.call_id])
        assert _dial_task(again).startswith("CA")

    def test_a_cancel_as_the_dispatcher_first_claims_the_batch_waits_for_no_one_in_a_circle(
        self, api: KeyedClient
    ) -> None:
        numbers = [{"clientNumber": factories.phone_number()} for _ in range(3)]
        batch_id = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": numbers}
        ).json()["batchId"]
        # The cancel has changed (and so locked) the batch's row; the dispatcher's tick claims
        # the batch's first calls meanwhile and comes to mark the queued batch running.
        with session_scope() as canceling:
            canceling.execute(select(Batch).where(Batch.id == batch_id).with_for_update())
            dispatching = Racer(lambda _: dispatcher.hand_out(session_scope))
            dispatching.wait_until_blocked_or_done()
            batch = canceling.get(Batch, batch_id)
            assert batch is not None
            # Its calls next: the tick holds them until it commits.
            batches_service.cancel(canceling, batch, hang_up=False)
        assert dispatching.join() >= 1
        with session_scope() as session:
            claims = [
                (attempt, call)
                for attempt, call in repository.untaken(session, utcnow() + timedelta(minutes=1))
                if call.batch_id == batch_id
            ]
        assert claims, "the tick claimed none of the batch's calls"
        for attempt, call in claims:
            with session_scope() as session:
                assert calls_service.take(session, call.id, attempt) is None
        shown = api.get(f"/api/batches/{batch_id}").json()
        assert shown["status"] == "canceled"
        assert shown["counts"] == {"canceled": 3}

    def test_a_resume_whose_flag_change_comes_after_a_later_pause_leaves_the_flag_set(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        batch_id, _ = _claimed_call(api)
        assert api.post(f"/api/batches/{batch_id}/pause").json()["status"] == "paused"
        # The resume commits, and the process is held up before its change of the flag runs.
        late: list[Callable[[], object]] = []
        with monkeypatch.context() as patched:
            patched.setattr(stops, "on_commit", lambda _session, action: late.append(action))
            with session_scope() as session:
                batch = session.get(Batch, batch_id)
                assert batch is not None
                batches_service.resume(session, batch)
        assert late
        # A pause commits meanwhile, and its change of the flag runs at once.
        assert api.post(f"/api/batches/{batch_id}/pause").json()["status"] == "paused"
        assert stops.is_stopped(batch_id)
        for action in late:
            action()
        assert stops.is_stopped(batch_id), "a paused batch's calls in hand would dial"

    def test_a_completed_batch_stays_completed(self, api: KeyedClient) -> None:
        batch_id, claimed = _claimed_call(api)
        with session_scope() as session:
            plan = calls_service.take(session, claimed.call_id, claimed.attempt)
            assert plan is not None
            calls_service.fail(session, plan, "21211", "invalid number")
        assert api.get(f"/api/batches/{batch_id}").json()["status"] == "completed"
        for change in ("pause", "resume", "cancel"):
            response = api.post(f"/api/batches/{batch_id}/{change}")
            assert response.status_code == 409, (change, response.text)
            assert response.json()["detail"] == f"batch {batch_id!r} is completed"
        assert api.get(f"/api/batches/{batch_id}").json()["status"] == "completed"

    def test_a_canceled_batch_can_be_canceled_again_and_nothing_else(
        self, api: KeyedClient
    ) -> None:
        batch_id, _ = _claimed_call(api)
        assert api.post(f"/api/batches/{batch_id}/cancel").json()["status"] == "canceled"
        assert api.post(f"/api/batches/{batch_id}/cancel").json()["status"] == "canceled"
        for change in ("pause", "resume"):
            response = api.post(f"/api/batches/{batch_id}/{change}")
            assert response.status_code == 409, (change, response.text)
            assert response.json()["detail"] == f"batch {batch_id!r} is canceled"
