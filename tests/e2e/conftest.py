import pytest

from tests import factories
from tests.stack import Api


@pytest.fixture
def api(api_server: str) -> Api:
    account_id, key = factories.account(credits=1000)
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    return Api(api_server, key)


@pytest.fixture
def customers(api_server: str) -> list[Api]:
    """Three accounts with credits, each with a campaign that offers the opt-out key 9."""
    made = []
    for _ in range(3):
        account_id, key = factories.account(credits=1000)
        api = Api(api_server, key, account_id)
        response = api.post(
            "/api/campaigns",
            json={"name": "offers", "script": "Hello {name}, Toingg here.", "optOutDigit": "9"},
        )
        assert response.status_code == 201, response.text
        made.append(api)
    return made
