"""What the API does not give away: why a dependency is down (only what), a stack trace, or
more than a few answers a second to whoever sends random keys."""

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from shared.accounts import service as accounts_service
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.embedded_redis import free_port
from tests import factories
from tests.api.conftest import KeyedClient

CALL = {"campaign": "welcome", "name": "Ada", "phoneNumber": "+14155552671"}


def unreachable_redis() -> redis.Redis:
    return redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)


@pytest.fixture(scope="module")
def quiet_client() -> Iterator[TestClient]:
    """A client that gets the answer a real client would get when the app raises."""
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


class TestWhatIsDown:
    def test_ready_names_redis_but_not_the_exception(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("api.routes.health.get_redis", unreachable_redis)
        ready = client.get("/api/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not ready", "detail": "redis unreachable"}

    def test_a_503_for_redis_says_only_that(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("shared.ratelimit.api.get_redis", unreachable_redis)
        response = api.post("/api/make_toingg/", json=CALL)
        assert response.status_code == 503
        assert response.json() == {"detail": "Redis is unreachable; retry shortly"}
        assert response.headers["Retry-After"] == "1"


class TestNoStackTraces:
    def test_an_unexpected_failure_answers_500_with_no_details(
        self, quiet_client: TestClient, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fails(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("secret-internal-detail at /srv/app/shared/calls/service.py")

        monkeypatch.setattr(calls_service, "place_call", fails)
        response = quiet_client.post("/api/make_toingg/", json=CALL, params={"apiKey": api.api_key})
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error"}
        assert "secret" not in response.text and "Traceback" not in response.text


class TestUnknownKeysPerAddress:
    @pytest.fixture
    def lookups(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        settings = get_settings()
        monkeypatch.setattr(settings, "API_BAD_KEY_RATE_PER_SECOND", 1.0)
        monkeypatch.setattr(settings, "API_BAD_KEY_BURST", 3)
        seen: list[str] = []
        real = accounts_service.active_key

        def counted(session, secret):  # type: ignore[no-untyped-def]
            seen.append(secret)
            return real(session, secret)

        monkeypatch.setattr(accounts_service, "active_key", counted)
        return seen

    def from_address(self, address: str) -> TestClient:
        return TestClient(create_app(), client=(address, 40000))

    def test_random_keys_are_limited_per_client_address(
        self, lookups: list[str], api: KeyedClient
    ) -> None:
        address = f"203.0.113.{uuid.uuid4().int % 250}"
        attacker = self.from_address(address)
        # The customer's key served lately, wherever from.
        customer = self.from_address(f"198.51.100.{uuid.uuid4().int % 250}")
        assert customer.get("/api/calls", params={"apiKey": api.api_key}).status_code == 200
        lookups.clear()
        statuses = [
            attacker.get("/api/calls", params={"apiKey": f"tg_{uuid.uuid4().hex}"}).status_code
            for _ in range(10)
        ]
        assert statuses == [401] * 3 + [429] * 7
        # Only the bucket's three reached the database.
        assert len(lookups) == 3
        # A key valid lately is still looked up and served from this address.
        assert attacker.get("/api/calls", params={"apiKey": api.api_key}).status_code == 200
        assert len(lookups) == 4
        refused = attacker.get("/api/calls", params={"apiKey": "tg_guess"})
        assert int(refused.headers["Retry-After"]) >= 1
        assert "too many unknown API keys" in refused.json()["detail"]
        checkout = attacker.post("/api/create-checkout-session", json={"apikey": "tg_guess"})
        assert checkout.status_code == 429
        assert len(lookups) == 4
        # Another address is not held back by this one.
        other = self.from_address(f"198.51.100.{uuid.uuid4().int % 250}")
        assert other.get("/api/calls", params={"apiKey": "tg_guess"}).status_code == 401
        assert other.get("/api/calls", params={"apiKey": api.api_key}).status_code == 200
        # The address's bucket drains at its rate.
        time.sleep(1.1)
        assert attacker.get("/api/calls", params={"apiKey": "tg_guess"}).status_code == 401

    def test_a_revoked_key_counts_as_unknown_after_its_first_refusal(
        self, lookups: list[str]
    ) -> None:
        _, key = factories.account()
        served = self.from_address(f"198.51.100.{uuid.uuid4().int % 250}")
        assert served.get("/api/calls", params={"apiKey": key}).status_code == 200
        client = self.from_address(f"192.0.2.{uuid.uuid4().int % 250}")
        with session_scope() as session:
            accounts_service.revoke_key(session, key[:12])
        lookups.clear()
        statuses = [client.get("/api/calls", params={"apiKey": key}).status_code for _ in range(6)]
        # The first is looked up as a key seen valid, then three take the address's tokens.
        assert statuses == [401] * 4 + [429] * 2
        assert len(lookups) == 4


class TestStripeDown:
    def test_stripe_unreachable_answers_502_without_the_library_text(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # An egress proxy of the operator's own, down: its name and port are no customer's
        # business, nor is the library's text.
        port = free_port()
        monkeypatch.setattr(
            get_settings(), "STRIPE_API_BASE", f"http://127.0.0.1:{port}/egress-proxy"
        )
        _, key = factories.account()
        response = client.post("/api/create-checkout-session", json={"apikey": key})
        assert response.status_code == 502
        assert response.json() == {"detail": "payments are unavailable; retry shortly"}
        assert str(port) in caplog.text  # the operator's log has the reason
