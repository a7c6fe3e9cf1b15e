from fastapi.testclient import TestClient

from tests.api.conftest import KeyedClient


class TestCampaigns:
    def test_create_read_update_delete(self, api: KeyedClient) -> None:
        created = api.post(
            "/api/campaigns", json={"name": "promo", "script": "Hi {name}", "maxCallMinutes": 3}
        )
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert campaign["callerId"] == "+15005550006"
        assert api.get(f"/api/campaigns/{campaign['id']}").json()["name"] == "promo"
        updated = api.patch(f"/api/campaigns/{campaign['id']}", json={"script": "Bye {name}"})
        assert updated.json()["script"] == "Bye {name}"
        assert api.delete(f"/api/campaigns/{campaign['id']}").status_code == 204
        assert api.get(f"/api/campaigns/{campaign['id']}").status_code == 404

    def test_name_is_unique_per_account(self, api: KeyedClient) -> None:
        response = api.post("/api/campaigns", json={"name": "welcome", "script": "x"})
        assert response.status_code == 409
        assert "welcome" in response.json()["detail"]

    def test_bad_caller_id_is_422(self, api: KeyedClient) -> None:
        response = api.post("/api/campaigns", json={"name": "c", "script": "x", "callerId": "12"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "callerId"]

    def test_a_campaign_with_calls_is_kept(self, api: KeyedClient) -> None:
        api.post(
            "/api/make_toingg/",
            json={"campaign": "welcome", "name": "A", "phoneNumber": "+14155552671"},
        )
        [campaign] = api.get("/api/campaigns").json()["items"]
        assert api.delete(f"/api/campaigns/{campaign['id']}").status_code == 409


class TestSendSms:
    def test_accepts_and_reads_back(self, api: KeyedClient) -> None:
        response = api.post(
            "/api/send_sms",
            json={"name": "John Doe", "phoneNumber": "+14155552671", "message": "Hello!"},
        )
        assert response.status_code == 200, response.text
        sms = api.get(f"/api/sms/{response.json()['smsId']}").json()
        assert sms["message"] == "Hello!"
        assert sms["phoneNumber"] == "+14155552671"

    def test_empty_message_and_bad_number_are_422(self, api: KeyedClient) -> None:
        empty = api.post(
            "/api/send_sms", json={"name": "J", "phoneNumber": "+14155552671", "message": ""}
        )
        assert empty.json()["detail"][0]["loc"] == ["body", "message"]
        bad = api.post("/api/send_sms", json={"name": "J", "phoneNumber": "555", "message": "x"})
        assert bad.json()["detail"][0]["loc"] == ["body", "phoneNumber"]


class TestHealth:
    def test_health_and_ready(self, client: TestClient) -> None:
        assert client.get("/api/health").json() == {"status": "ok"}
        ready = client.get("/api/ready")
        assert ready.status_code == 200
        assert ready.json()["redis"] == "ok"

    def test_docs_are_served(self, client: TestClient) -> None:
        assert client.get("/api/docs").status_code == 200
        paths = client.get("/api/openapi.json").json()["paths"]
        for path in (
            "/api/make_toingg/",
            "/api/make_batch_toingg",
            "/api/send_sms",
            "/api/hang_up_call",
            "/api/make_toingg_details",
            "/api/make/toingg",
        ):
            assert path in paths
