from fastapi.testclient import TestClient

from shared.billing import ledger
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Call
from tests import factories
from tests.api.conftest import KeyedClient


class TestMakeToingg:
    def test_accepts_a_call_and_answers_its_id_and_e164_number(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "Ada", "phoneNumber": "(415) 555-2671"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert body["phoneNumber"] == "+14155552671"
        call = api.get(f"/api/calls/{body['callId']}").json()
        assert call["status"] == "queued"
        assert call["name"] == "Ada"
        assert call["timeline"][0]["status"] == "queued"

    def test_path_without_trailing_slash_works_too(self, api: KeyedClient) -> None:
        body = {"campaign": "welcome", "name": "Ada", "phoneNumber": "+14155552671"}
        assert api.post("/api/make_toingg", json=body).status_code == 200

    def test_invalid_number_is_422_naming_the_field(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "Ada", "phoneNumber": "+1234567890"},
        )
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "phoneNumber"]
        assert "not a valid phone number" in error["msg"]

    def test_text_that_is_no_number_is_422(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_toingg/", json={"campaign": "welcome", "name": "A", "phoneNumber": "call me"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "phoneNumber"]

    def test_missing_field_and_wrong_type_are_422(self, api: KeyedClient) -> None:
        response = api.post("/api/make_toingg/", json={"campaign": ["x"], "name": "A"})
        assert response.status_code == 422
        locs = {tuple(e["loc"]) for e in response.json()["detail"]}
        assert locs == {("body", "campaign"), ("body", "phoneNumber")}

    def test_body_that_is_not_json_is_422(self, api: KeyedClient) -> None:
        response = api.client.post(
            "/api/make_toingg/",
            content=b"{not json",
            params={"apiKey": api.api_key},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422

    def test_unknown_campaign_is_404_naming_it(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_toingg/",
            json={"campaign": "nope", "name": "A", "phoneNumber": "+14155552671"},
        )
        assert response.status_code == 404
        assert "'nope'" in response.json()["detail"]


class TestMakeToinggAlias:
    def test_single_call_body(self, api: KeyedClient) -> None:
        body = {"campaign": "welcome", "name": "Ada", "phoneNumber": "+14155552671"}
        response = api.post("/api/make/toingg", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "queued"

    def test_number_list_body_acts_as_a_batch(self, api: KeyedClient) -> None:
        numbers = [{"clientName": "A", "clientNumber": factories.phone_number()} for _ in range(3)]
        response = api.post("/api/make/toingg", json={"campaign": "welcome", "numberList": numbers})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 3

    def test_bad_body_is_422_naming_the_field(self, api: KeyedClient) -> None:
        response = api.post("/api/make/toingg", json={"campaign": "welcome", "name": "A"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "phoneNumber"]


class TestMakeToinggDetails:
    def test_creates_the_campaign_and_places_the_call(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/make_toingg_details",
            json={
                "campaignName": "MyCampaign",
                "campaignScript": "Hello, this is a test call.",
                "name": "John Doe",
                "phoneNumber": "+14155552671",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["campaign"] == "MyCampaign"
        campaigns = api.get("/api/campaigns").json()["items"]
        assert {c["name"]: c["script"] for c in campaigns}["MyCampaign"] == (
            "Hello, this is a test call."
        )

    def test_updates_the_script_of_an_existing_campaign(self, api: KeyedClient) -> None:
        body = {
            "campaignName": "welcome",
            "campaignScript": "New words for {name}.",
            "name": "Jo",
            "phoneNumber": "+14155552671",
        }
        assert api.post("/api/make_toingg_details", json=body).status_code == 200
        [campaign] = api.get("/api/campaigns").json()["items"]
        assert campaign["script"] == "New words for {name}."

    def test_bad_number_leaves_the_campaign_unchanged(self, api: KeyedClient) -> None:
        body = {
            "campaignName": "welcome",
            "campaignScript": "Changed",
            "name": "Jo",
            "phoneNumber": "12",
        }
        assert api.post("/api/make_toingg_details", json=body).status_code == 422
        [campaign] = api.get("/api/campaigns").json()["items"]
        assert campaign["script"] == "Hello {name}, this is Toingg."


class TestReadingCalls:
    def test_another_accounts_call_is_404(self, api: KeyedClient, client: TestClient) -> None:
        call_id = api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "A", "phoneNumber": "+14155552671"},
        ).json()["callId"]
        _, other_key = factories.account()
        response = client.get(f"/api/calls/{call_id}", params={"apiKey": other_key})
        assert response.status_code == 404
        assert "welcome" not in response.text

    def test_list_filters_by_campaign_and_status_and_paginates(self, api: KeyedClient) -> None:
        factories.campaign(api.account_id, name="other")
        for campaign in ("welcome", "welcome", "welcome", "other"):
            api.post(
                "/api/make_toingg/",
                json={"campaign": campaign, "name": "A", "phoneNumber": factories.phone_number()},
            )
        page = api.get("/api/calls", campaign="welcome", status="queued", limit=2).json()
        assert page["total"] == 3
        assert len(page["items"]) == 2
        rest = api.get("/api/calls", campaign="welcome", limit=2, offset=2).json()
        assert len(rest["items"]) == 1
        assert api.get("/api/calls", status="bogus").status_code == 422


class TestHangUpBeforeTwilio:
    def test_a_queued_call_is_canceled_at_once(self, api: KeyedClient) -> None:
        call_id = api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "A", "phoneNumber": "+14155552671"},
        ).json()["callId"]
        response = api.post("/api/hang_up_call", callSid=call_id)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceled"
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "canceled"

    def test_unknown_call_is_404(self, api: KeyedClient) -> None:
        response = api.post("/api/hang_up_call", callSid="CA" + "f" * 32)
        assert response.status_code == 404

    def test_missing_call_sid_is_422(self, api: KeyedClient) -> None:
        response = api.post("/api/hang_up_call")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "callSid"]

    def test_a_call_hung_up_while_handed_back_gives_its_reservation_back_at_once(
        self, api: KeyedClient
    ) -> None:
        call_id = api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "A", "phoneNumber": factories.phone_number()},
        ).json()["callId"]
        with session_scope() as session:
            plan = calls_service.take(session, call_id, None)
            assert plan is not None
        # The hang-up comes while the worker dials; Twilio was unreachable, and the worker hands
        # the call back to retry it.
        assert api.post("/api/hang_up_call", callSid=call_id).json()["hangupRequested"] is True
        with session_scope() as session:
            assert calls_service.release(session, plan)
        with session_scope() as session:
            assert calls_service.take(session, call_id, None) is None  # the retry
        with session_scope() as session:
            call = session.get(Call, call_id)
            assert call is not None
            assert (call.status, call.credits_reserved) == ("canceled", 0)
            assert ledger.balance_of(session, api.account_id) == 100
