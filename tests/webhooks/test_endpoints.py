"""Webhook endpoints through the API: the secret shown once, changes, rotation, and URLs that
would lead into our own network refused in production."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from shared.config import Settings, get_settings
from shared.db import session_scope
from shared.webhooks import addresses, endpoints
from shared.webhooks.schemas import EndpointCreate
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer

PATH = "/api/webhook-endpoints"
PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture
def customer(client: TestClient) -> KeyedClient:
    account_id, key = factories.account()
    return KeyedClient(client, account_id, key)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved as the test says (every other name does not resolve)."""
    names: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:  # type: ignore[type-arg]
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """WEBHOOK_ALLOW_PRIVATE_URLS unset, as a production deployment leaves it."""
    monkeypatch.setattr(get_settings(), "ENVIRONMENT", "production")
    monkeypatch.setattr(get_settings(), "WEBHOOK_ALLOW_PRIVATE_URLS", None)
    yield


def refusal(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "url"]
    return error["msg"]  # type: ignore[no-any-return]


class TestEndpoints:
    def test_the_secret_is_shown_once_and_signs_as_standard_webhooks_says(
        self, customer: KeyedClient
    ) -> None:
        created = customer.post(PATH, {"url": "http://127.0.0.1:9/hooks", "events": ["call.*"]})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret"].startswith("whsec_")
        Webhook(body["secret"])  # a secret every Standard Webhooks library reads
        assert body["events"] == ["call.*"] and body["enabled"] is True
        shown = customer.get(f"{PATH}/{body['id']}").json()
        assert "secret" not in shown and shown["url"] == "http://127.0.0.1:9/hooks"
        listed = customer.get(PATH).json()["items"]
        assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]

    def test_every_event_by_default(self, customer: KeyedClient) -> None:
        created = customer.post(PATH, {"url": "http://127.0.0.1:9/hooks"}).json()
        assert created["events"] == ["*"]

    def test_changed_and_deleted(self, customer: KeyedClient) -> None:
        endpoint = customer.post(PATH, {"url": "http://127.0.0.1:9/a"}).json()
        changed = customer.patch(
            f"{PATH}/{endpoint['id']}",
            {"url": "http://127.0.0.1:9/b", "events": ["sms.delivered", "sms.delivered"],
             "description": "texts", "enabled": False},
        )  # fmt: skip
        assert changed.status_code == 200, changed.text
        shown = changed.json()
        assert shown["url"] == "http://127.0.0.1:9/b" and shown["events"] == ["sms.delivered"]
        assert shown["enabled"] is False and shown["description"] == "texts"
        assert customer.delete(f"{PATH}/{endpoint['id']}").status_code == 204
        assert customer.get(f"{PATH}/{endpoint['id']}").status_code == 404
        assert customer.get(PATH).json()["items"] == []

    def test_another_accounts_endpoint_is_not_found(
        self, customer: KeyedClient, client: TestClient
    ) -> None:
        other_id, other_key = factories.account()
        other = KeyedClient(client, other_id, other_key)
        endpoint = other.post(PATH, {"url": "http://127.0.0.1:9/hooks"}).json()
        for response in (
            customer.get(f"{PATH}/{endpoint['id']}"),
            customer.patch(f"{PATH}/{endpoint['id']}", {"enabled": False}),
            customer.delete(f"{PATH}/{endpoint['id']}"),
            customer.post(f"{PATH}/{endpoint['id']}/rotate-secret"),
        ):
            assert response.status_code == 404, response.text
        assert other.get(f"{PATH}/{endpoint['id']}").json()["enabled"] is True

    def test_an_account_has_at_most_its_share_of_endpoints(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Every status change of the account reads its endpoints and writes a delivery for
        # each: without a cap, a script adding one per run (or listeners killed with SIGKILL)
        # multiplied every event's writes, and each unreachable one retried for 3 days.
        monkeypatch.setattr(endpoints, "MAX_PER_ACCOUNT", 3)
        made = [
            customer.post(PATH, {"url": f"http://127.0.0.1:9/{n}"}).json()["id"] for n in range(3)
        ]
        refused = customer.post(PATH, {"url": "http://127.0.0.1:9/4"})
        assert refused.status_code == 409, refused.text
        assert "at most 3 webhook endpoints" in refused.json()["detail"]
        assert customer.delete(f"{PATH}/{made[0]}").status_code == 204
        assert customer.post(PATH, {"url": "http://127.0.0.1:9/4"}).status_code == 201

    def test_endpoints_added_at_once_keep_to_the_cap(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(endpoints, "MAX_PER_ACCOUNT", 1)
        with session_scope() as held:
            endpoints.create(held, customer.account_id, EndpointCreate(url="http://127.0.0.1:9/"))
            other = Racer(
                lambda session: endpoints.create(
                    session, customer.account_id, EndpointCreate(url="http://127.0.0.1:9/b")
                )
            )
            other.wait_until_blocked()
        with pytest.raises(endpoints.TooManyEndpoints):
            other.join()

    @pytest.mark.parametrize(
        ("events", "named"),
        [
            ([], "at least one"),
            (["call"], "'call'"),
            (["call.complete"], "'call.complete'"),
            # Only * is a wildcard: ? and [...] were matched as wildcards by the deliveries but
            # as themselves by the replay, which then sent none of the events delivered.
            (["call.?ueued"], "'call.?ueued'"),
            (["call.[cq]*"], "'call.[cq]*'"),
            (["sms.[!q]*"], "'sms.[!q]*'"),
        ],
    )
    def test_events_that_are_no_type_or_wildcard_are_refused(
        self, customer: KeyedClient, events: list[str], named: str
    ) -> None:
        response = customer.post(PATH, {"url": "http://127.0.0.1:9/", "events": events})
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "events"] and named in error["msg"]

    @pytest.mark.parametrize("enabled", ["yes", "no", "1", "true", 1, 0, None])
    def test_enabled_is_only_true_or_false(self, customer: KeyedClient, enabled: object) -> None:
        endpoint = customer.post(PATH, {"url": "http://127.0.0.1:9/a"}).json()
        created = customer.post(PATH, {"url": "http://127.0.0.1:9/b", "enabled": enabled})
        changed = customer.patch(f"{PATH}/{endpoint['id']}", {"enabled": enabled})
        for response in (created, changed) if enabled is not None else (created,):
            assert response.status_code == 422, response.text
            [error] = response.json()["detail"]
            assert error["loc"] == ["body", "enabled"], error
        assert [e["enabled"] for e in customer.get(PATH).json()["items"]] == [True]

    @pytest.mark.parametrize(
        "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:25/", "127.0.0.1"]
    )
    def test_only_http_and_https(self, customer: KeyedClient, url: str) -> None:
        assert "http:// or https://" in refusal(customer.post(PATH, {"url": url}))

    def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(
        self, customer: KeyedClient
    ) -> None:
        endpoint = customer.post(PATH, {"url": "http://127.0.0.1:9/hooks"}).json()
        rotated = customer.post(f"{PATH}/{endpoint['id']}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()
        assert new["secret"].startswith("whsec_") and new["secret"] != endpoint["secret"]
        shown = customer.get(f"{PATH}/{endpoint['id']}").json()
        assert shown["previousSecretExpiresAt"] == new["previousSecretExpiresAt"]
        until = datetime.fromisoformat(new["previousSecretExpiresAt"])
        created = datetime.fromisoformat(shown["createdAt"])
        assert timedelta(hours=23, minutes=59) < until - created < timedelta(hours=24, minutes=1)


class TestPrivateUrls:
    def test_allowed_in_development_refused_in_production_unless_set(self) -> None:
        assert Settings.model_construct(ENVIRONMENT="development").webhook_allow_private_urls
        assert not Settings.model_construct(ENVIRONMENT="production").webhook_allow_private_urls
        assert Settings.model_construct(
            ENVIRONMENT="production", WEBHOOK_ALLOW_PRIVATE_URLS=True
        ).webhook_allow_private_urls

    def test_development_registers_a_local_receiver(self, customer: KeyedClient) -> None:
        assert customer.post(PATH, {"url": "http://localhost:3000/hooks"}).status_code == 201

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("http://127.0.0.1:3000/hooks", "loopback"),
            ("http://[::1]/hooks", "loopback"),
            ("http://[::ffff:127.0.0.1]/hooks", "loopback"),
            ("https://10.1.2.3/hooks", "private"),
            ("https://192.168.0.10/hooks", "private"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://[fd00:ec2::254]/", "metadata"),
            ("http://169.254.10.10/", "link-local"),
            ("http://0.0.0.0:8000/", "private"),
            # IPv6 forms that carry an IPv4 address a gateway (NAT64, 6to4) or the host itself
            # reaches: refused as that IPv4 address is.
            ("http://[64:ff9b::a00:7]/", "10.0.0.7, a private address"),
            ("http://[64:ff9b::7f00:1]/", "127.0.0.1, a loopback address"),
            ("http://[64:ff9b:1::c0a8:a]/", "local-use NAT64"),
            ("http://[2002:a00:7::1]/", "10.0.0.7, a private address"),
            ("http://[::127.0.0.1]/", "127.0.0.1, a loopback address"),
            ("http://[::ffff:0:a00:7]/", "10.0.0.7, a private address"),
            ("http://[fec0::1]/", "site-local"),
        ],
    )
    def test_production_refuses_an_address_in_our_network(
        self, customer: KeyedClient, production: None, url: str, why: str
    ) -> None:
        assert why in refusal(customer.post(PATH, {"url": url}))

    def test_production_refuses_a_name_that_resolves_into_our_network(
        self, customer: KeyedClient, production: None, dns: dict[str, list[str]]
    ) -> None:
        dns["hooks.example.com"] = [PUBLIC_ADDRESS]
        dns["internal.example.com"] = ["10.0.0.7"]
        dns["both.example.com"] = [PUBLIC_ADDRESS, "127.0.0.1"]
        assert customer.post(PATH, {"url": "https://hooks.example.com/x"}).status_code == 201
        assert "10.0.0.7, a private address" in refusal(
            customer.post(PATH, {"url": "https://internal.example.com/x"})
        )
        assert "127.0.0.1, a loopback address" in refusal(
            customer.post(PATH, {"url": "https://both.example.com/x"})
        )
        assert "does not resolve" in refusal(
            customer.post(PATH, {"url": "https://nowhere.example.com/x"})
        )

    def test_a_name_that_takes_its_time_to_resolve_is_refused_in_seconds(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The request held its database connection while the resolver waited: a few of them
        # at once took the API's pool.
        answered = threading.Event()

        def getaddrinfo(*args: object, **kwargs: object) -> list[tuple]:  # type: ignore[type-arg]
            answered.wait(30)
            return []

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(addresses, "RESOLVE_SECONDS", 0.5)
        started = time.monotonic()
        try:
            response = customer.post(PATH, {"url": "https://slow.example.com/x"})
        finally:
            answered.set()
        assert time.monotonic() - started < 2.5
        assert "slow.example.com did not resolve within 0.5 s" in refusal(response)

    def test_production_refuses_a_change_to_a_private_url(
        self, customer: KeyedClient, production: None, dns: dict[str, list[str]]
    ) -> None:
        dns["hooks.example.com"] = [PUBLIC_ADDRESS]
        endpoint = customer.post(PATH, {"url": "https://hooks.example.com/x"}).json()
        response = customer.patch(f"{PATH}/{endpoint['id']}", {"url": "http://127.0.0.1/"})
        assert "loopback" in refusal(response)
        assert customer.get(f"{PATH}/{endpoint['id']}").json()["url"] == endpoint["url"]

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[2002:a9fe:a9fe::]/",
        ],
    )
    def test_the_metadata_address_is_refused_even_where_private_urls_are_allowed(
        self, customer: KeyedClient, url: str
    ) -> None:
        assert "metadata" in refusal(customer.post(PATH, {"url": url}))

    def test_a_public_address_through_a_nat64_gateway_is_allowed(
        self, customer: KeyedClient, production: None
    ) -> None:
        # 93.184.215.14 as NAT64 writes it: the embedded address decides.
        assert customer.post(PATH, {"url": "http://[64:ff9b::5db8:d70e]/"}).status_code == 201
