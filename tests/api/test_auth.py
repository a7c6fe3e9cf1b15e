import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shared.accounts import service as accounts_service
from shared.cli.stack import api_argv
from shared.config import get_settings
from shared.db import session_scope
from shared.embedded_redis import free_port
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import wait_until

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


@pytest.fixture
def small_bad_key_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    # Slow enough that no token comes back while a test runs, however loaded the machine.
    monkeypatch.setattr(settings, "API_BAD_KEY_RATE_PER_SECOND", 0.05)
    monkeypatch.setattr(settings, "API_BAD_KEY_BURST", 3)


@pytest.mark.usefixtures("small_bad_key_bucket")
class TestBadKeyLimit:
    def test_a_valid_key_sharing_an_address_with_random_keys_still_works(self) -> None:
        # Behind the TLS proxy production needs, every client may reach the API from the
        # proxy's address.
        _, key = factories.account(credits=10)
        proxy = f"172.18.{uuid.uuid4().int % 250}.1"
        shared = TestClient(create_app(), client=(proxy, 40000))
        assert shared.get("/api/calls", params={"apiKey": key}).status_code == 200
        for _ in range(5):  # an attacker's random keys, through the same proxy
            shared.get("/api/calls", params={"apiKey": f"tg_{uuid.uuid4().hex}"})
        assert shared.get("/api/calls", params={"apiKey": "tg_guess"}).status_code == 429
        customer = shared.get("/api/calls", params={"apiKey": key})
        assert customer.status_code == 200, customer.text

    def test_a_key_new_to_a_flooded_address_waits_for_its_bucket(self) -> None:
        # The price of a bound on lookups: a key not yet seen valid is one more unknown key.
        # Behind a proxy, FORWARDED_ALLOW_IPS gives each client its own bucket.
        _, key = factories.account(credits=10)
        shared = TestClient(create_app(), client=(f"172.19.{uuid.uuid4().int % 250}.1", 40000))
        for _ in range(3):
            shared.get("/api/calls", params={"apiKey": f"tg_{uuid.uuid4().hex}"})
        refused = shared.get("/api/calls", params={"apiKey": key})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1

    def test_one_ipv6_network_shares_one_bucket_whatever_its_addresses(self) -> None:
        # Any host on IPv6 holds a /64: 2**64 addresses, each with a bucket of its own.
        network = f"2001:db8:{uuid.uuid4().int % 65536:x}:1"
        app = create_app()
        statuses = [
            TestClient(app, client=(f"{network}::{host:x}", 40000))
            .get("/api/calls", params={"apiKey": f"tg_{uuid.uuid4().hex}"})
            .status_code
            for host in range(1, 11)
        ]
        assert statuses == [401] * 3 + [429] * 7
        other_network = f"2001:db8:{uuid.uuid4().int % 65536:x}:2::1"
        other = TestClient(app, client=(other_network, 40000))
        assert other.get("/api/calls", params={"apiKey": "tg_guess"}).status_code == 401


class TestForwardedAddresses:
    """`toingg api` as production runs it, sent random keys each with an X-Forwarded-For of
    its own."""

    @pytest.fixture
    def start_api(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], httpx.Client]]:
        started: list[subprocess.Popen[bytes]] = []

        def start(forwarded_allow_ips: str) -> httpx.Client:
            monkeypatch.setattr(
                get_settings(), "FORWARDED_ALLOW_IPS", forwarded_allow_ips, raising=False
            )
            port = free_port()
            env = {**os.environ, "API_BAD_KEY_RATE_PER_SECOND": "0.05", "API_BAD_KEY_BURST": "3"}
            started.append(subprocess.Popen(api_argv("127.0.0.1", port), env=env))
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

            def up() -> bool:
                try:
                    return http.get("/api/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, timeout=30)
            return http

        yield start
        for process in started:
            process.terminate()
            process.wait(timeout=10)

    def statuses(self, http: httpx.Client) -> list[int]:
        return [
            http.get(
                "/api/calls",
                params={"apiKey": f"tg_{uuid.uuid4().hex}"},
                headers={"X-Forwarded-For": f"198.51.{uuid.uuid4().int % 250}.{host}"},
            ).status_code
            for host in range(1, 7)
        ]

    def test_no_proxy_is_believed_unless_named(
        self, start_api: Callable[[str], httpx.Client]
    ) -> None:
        assert self.statuses(start_api("")) == [401] * 3 + [429] * 3

    def test_a_named_proxy_passes_each_client_address(
        self, start_api: Callable[[str], httpx.Client]
    ) -> None:
        assert self.statuses(start_api("127.0.0.1")) == [401] * 6
