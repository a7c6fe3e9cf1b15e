import pytest

from tests import factories
from tests.stack import Api


@pytest.fixture
def api(api_server: str) -> Api:
    account_id, key = factories.account(credits=1000)
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    return Api(api_server, key)
