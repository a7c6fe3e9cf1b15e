import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import select

from shared.batches import service as batches_service
from shared.batches import stops
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Batch, Call, utcnow
from tests import factories
from tests.api.conftest import KeyedClient
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


def _held_call(api: KeyedClient) -> tuple[str, calls_service.DialPlan]:
    """A one-number batch whose call a worker has taken for dialing: (batch, the worker's plan)."""
    batch_id = api.post(
        "/api/make_batch_toingg",
        json={"campaign": "welcome", "numberList": [{"clientNumber": factories.phone_number()}]},
    ).json()["batchId"]
    with session_scope() as session:
        [call_id] = session.scalars(select(Call.id).where(Call.batch_id == batch_id))
        [claimed] = calls_service.claim(session, api.account_id, [call_id])
    with session_scope() as session:
        plan = calls_service.take(session, call_id, claimed)
    assert plan is not None
    return batch_id, plan


def _hand_back(plan: calls_service.DialPlan) -> None:
    """What a worker does with its claim when it finds the batch's stop flag set."""
    with session_scope() as session:
        calls_service.release(session, plan)


class TestAWorkerHoldingACallWhenItsBatchStops:
    def test_a_call_handed_back_while_the_cancel_commits_is_canceled(
        self, api: KeyedClient
    ) -> None:
        batch_id, plan = _held_call(api)
        # The cancel sets the stop flag before its transaction commits: a worker that sees the
        # flag hands its call back while the cancel is written but not yet committed.
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
