from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests import factories


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


class KeyedClient:
    """A TestClient that sends the account's key as the seeds do: ?apiKey=..."""

    def __init__(self, client: TestClient, account_id: str, api_key: str) -> None:
        self.client = client
        self.account_id = account_id
        self.api_key = api_key

    def post(self, path: str, json: object = None, **params: str):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=json, params={"apiKey": self.api_key, **params})

    def get(self, path: str, **params: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, params={"apiKey": self.api_key, **params})

    def patch(self, path: str, json: object):  # type: ignore[no-untyped-def]
        return self.client.patch(path, json=json, params={"apiKey": self.api_key})

    def delete(self, path: str):  # type: ignore[no-untyped-def]
        return self.client.delete(path, params={"apiKey": self.api_key})


@pytest.fixture
def api(client: TestClient) -> KeyedClient:
    account_id, key = factories.account(credits=100)
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    return KeyedClient(client, account_id, key)
