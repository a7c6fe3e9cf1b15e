from fastapi.testclient import TestClient

from shared.accounts import service as accounts_service
from shared.db import session_scope
from tests import factories
from tests.api.conftest import KeyedClient

BODY = {"campaign": "welcome", "name": "Ada", "phoneNumber": "+14155552671"}


class TestApiKeys:
    def test_missing_key_is_401_with_a_message(self, client: TestClient) -> None:
        response = client.post("/api/make_toingg/", json=BODY)
        assert response.status_code == 401
        assert "missing API key" in response.json()["detail"]

    def test_unknown_key_is_401(self, client: TestClient) -> None:
        response = client.post("/api/make_toingg/", json=BODY, params={"apiKey": "tg_nope"})
        assert response.status_code == 401
        assert response.json()["detail"] == "unknown or revoked API key"

    def test_revoked_key_is_401(self, api: KeyedClient) -> None:
        with session_scope() as session:
            accounts_service.revoke_key(session, api.api_key[:12])
        response = api.post("/api/make_toingg/", json=BODY)
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]

    def test_bearer_header_works_like_the_query_parameter(
        self, client: TestClient, api: KeyedClient
    ) -> None:
        response = client.post(
            "/api/make_toingg/", json=BODY, headers={"Authorization": f"Bearer {api.api_key}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "queued"

    def test_auth_is_checked_before_the_body(self, client: TestClient) -> None:
        response = client.post("/api/make_toingg/", json={"bad": "body"})
        assert response.status_code == 401

    def test_second_key_for_an_account_works_until_revoked(self, client: TestClient) -> None:
        account_id, _ = factories.account()
        with session_scope() as session:
            key = accounts_service.create_key(session, account_id).secret
        assert client.get("/api/calls", params={"apiKey": key}).status_code == 200
        with session_scope() as session:
            accounts_service.revoke_key(session, key[:12])
        assert client.get("/api/calls", params={"apiKey": key}).status_code == 401
