import pytest
from sqlalchemy import update

from shared.db import session_scope
from shared.models import WebhookEndpoint
from tests.api.conftest import client  # noqa: F401 (the API in the tests' process)


@pytest.fixture(autouse=True)
def only_this_tests_endpoints() -> None:
    """Each test delivers to the endpoints it made: earlier tests' endpoints, whose receivers
    are gone, are disabled, so their retries neither fill this test's ticks nor reach a port
    that something else has taken since."""
    with session_scope() as session:
        session.execute(update(WebhookEndpoint).values(enabled=False))
