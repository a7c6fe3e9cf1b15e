"""A call keeps what it was accepted with: its script (with its name filled in) and its time
limit. A campaign changed after a call was accepted changes only the calls accepted after it:
not what the callee hears, nor the credits held, nor Twilio's TimeLimit."""

import threading
from datetime import timedelta

from shared.calls import dispatcher
from shared.calls import service as calls_service
from shared.campaigns import service as campaigns_service
from shared.campaigns.schemas import CampaignUpdate
from shared.db import session_scope
from shared.models import Account, utcnow
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until


def customer(api_server: str, credits: int = 100) -> Api:
    account_id, key = factories.account(credits=credits)
    return Api(api_server, key, account_id)


def patch_campaign(api: Api, campaign_id: str, changes: dict[str, object]) -> None:
    response = api.http.patch(
        f"/api/campaigns/{campaign_id}", json=changes, params={"apiKey": api.api_key}
    )
    assert response.status_code == 200, response.text


def status_of(api: Api, call_id: str) -> str:
    return api.get(f"/api/calls/{call_id}").json()["status"]


def ringing_at_carrier(carrier: Carrier, number: str) -> bool:
    return any(c["status"] == "ringing" for c in carrier.calls(to=number))


def heard(carrier: Carrier, number: str) -> str:
    [at_carrier] = carrier.calls(to=number)
    return at_carrier["twiml"] or ""


class TestTheScriptIsTheOneAccepted:
    def test_a_new_script_for_the_campaign_is_not_what_a_ringing_callee_hears(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        # Long enough a ring that the second request lands before the first call is answered.
        carrier.configure(RING_SECONDS=4)
        api = customer(api_server)
        first, second = factories.phone_number(), factories.phone_number()
        details = {"campaignName": "results", "name": "Ada"}
        response = api.post(
            "/api/make_toingg_details",
            json={**details, "campaignScript": "{name}, your result is NEGATIVE.",
                  "phoneNumber": first},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        first_id = response.json()["callId"]
        wait_until(lambda: ringing_at_carrier(carrier, first), 30, message="first call ringing")
        response = api.post(
            "/api/make_toingg_details",
            json={**details, "name": "Bob", "campaignScript": "{name}, your result is POSITIVE.",
                  "phoneNumber": second},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        second_id = response.json()["callId"]
        for call_id in (first_id, second_id):
            wait_until(lambda: status_of(api, call_id) == "completed", 60, message=call_id)  # noqa: B023
        assert "Ada, your result is NEGATIVE." in heard(carrier, first)
        assert "POSITIVE" not in heard(carrier, first)
        assert "Bob, your result is POSITIVE." in heard(carrier, second)

    def test_a_batch_call_keeps_its_script_through_a_campaign_edit(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        carrier.configure(RING_SECONDS=4)
        api = customer(api_server)
        campaign_id = factories.campaign(api.account_id, name="reminder", script="Hi {name}, A.")
        number = factories.phone_number()
        response = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "reminder", "numberList": [
                {"clientName": "Cleo", "clientNumber": number}
            ]},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        wait_until(lambda: ringing_at_carrier(carrier, number), 30, message="batch call ringing")
        patch_campaign(api, campaign_id, {"script": "Hi {name}, B."})
        batch_id = response.json()["batchId"]
        wait_until(
            lambda: api.get(f"/api/batches/{batch_id}").json()["status"] == "completed",
            60,
            message="batch completed",
        )
        assert "Hi Cleo, A." in heard(carrier, number)


class TestTheTimeLimitIsTheOneAccepted:
    def test_a_longer_limit_set_after_acceptance_changes_neither_reservation_nor_time_limit(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        # One line, held by a call that rings until it is hung up: the second call is accepted
        # and waits, unclaimed, while the campaign changes.
        response = api.post(
            "/api/campaigns",
            json={"name": "limits", "script": "Hello {name}.", "maxCallMinutes": 2,
                  "maxConcurrentCalls": 1},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        campaign_id = response.json()["id"]
        holding, waiting = factories.phone_number(), factories.phone_number()
        carrier.configure(outcomes={holding: "hold"})
        place = {"campaign": "limits", "name": "Dee"}
        holding_id = api.post("/api/make_toingg/", json={**place, "phoneNumber": holding}).json()[
            "callId"
        ]
        wait_until(lambda: ringing_at_carrier(carrier, holding), 30, message="line held")
        response = api.post("/api/make_toingg/", json={**place, "phoneNumber": waiting})
        assert response.status_code == 200, response.text
        waiting_id = response.json()["callId"]
        patch_campaign(api, campaign_id, {"maxCallMinutes": 7})
        assert status_of(api, waiting_id) == "queued"
        assert api.post("/api/hang_up_call", callSid=holding_id).status_code == 200
        wait_until(lambda: status_of(api, waiting_id) == "completed", 60, message="second call")
        [at_carrier] = carrier.calls(to=waiting)
        assert at_carrier["params"]["TimeLimit"] == "120"
        entries = api.get("/api/credits", limit=100).json()["entries"]
        [reserved] = [
            e for e in entries if e["subjectId"] == waiting_id and e["reason"] == "call_reservation"
        ]
        assert reserved["delta"] == -2

    def test_a_live_call_is_overdue_by_its_own_limit_not_its_campaigns_new_one(
        self, api_server: str
    ) -> None:
        account_id, _ = factories.account(credits=100)
        campaign_id = factories.campaign(account_id, name="short")
        with session_scope() as session:
            account = session.get(Account, account_id)
            assert account is not None
            campaign = campaigns_service.get(session, account_id, campaign_id)
            campaign.max_call_minutes = 1
            call = calls_service.place_call(
                session, account, campaign, "Eve", factories.phone_number()
            )
            campaigns_service.update(session, campaign, CampaignUpdate(maxCallMinutes=240))
            # Answered long ago: past its own one minute (and the ring), within 240.
            call.status = "in-progress"
            call.twilio_sid = "CA" + call.id.replace("-", "")
            call.dial_started_at = utcnow() - timedelta(minutes=10)
            session.flush()
            overdue = dispatcher.overdue_live(session, utcnow())
            session.rollback()
        assert call.id in overdue


class TestScriptsAreStoredOnce:
    def test_the_same_new_text_accepted_twice_at_once_is_one_script(self) -> None:
        account_id, _ = factories.account()
        text = "Hello {name}, " + factories.phone_number()
        found: list[str] = []
        with session_scope() as first:
            mine = campaigns_service.script_version(first, account_id, text)

            def second() -> None:
                with session_scope() as session:
                    found.append(campaigns_service.script_version(session, account_id, text))

            # The second request finds nothing committed, and its insert waits for the first.
            other = threading.Thread(target=second)
            other.start()
            other.join(timeout=1)
            assert other.is_alive()
        other.join(timeout=30)
        assert found == [mine]
