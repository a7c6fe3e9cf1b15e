"""The API's leaky bucket per key: over it, 429 with Retry-After and RateLimit headers, and the
request has no effect."""

import json
import subprocess
import sys
import time

from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.models import Account
from tests import factories

BODY = {"campaign": "welcome", "name": "A", "phoneNumber": "+14155552671"}


def limited_account(rate: float, burst: int) -> tuple[str, str]:
    account_id, key = factories.account(credits=1000)
    factories.campaign(account_id)
    with session_scope() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.api_rate_per_second, account.api_burst = rate, burst
    return account_id, key


class TestApiRateLimit:
    def test_over_the_bucket_is_429_with_headers_and_no_effect(self, client: TestClient) -> None:
        _, key = limited_account(rate=1, burst=2)
        responses = [
            client.post("/api/make_toingg/", json=BODY, params={"apiKey": key}) for _ in range(5)
        ]
        assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
        assert responses[0].headers["RateLimit-Limit"] == "2"
        assert [r.headers["RateLimit-Remaining"] for r in responses[:2]] == ["1", "0"]
        refused = responses[2]
        assert refused.headers["Retry-After"] == "1"
        assert "rate limit" in refused.json()["detail"]
        calls = client.get("/api/calls", params={"apiKey": key})
        # The refused requests placed nothing (and this read itself waited for its token).
        assert calls.status_code in (200, 429)
        time.sleep(1.1)
        assert client.get("/api/calls", params={"apiKey": key}).json()["total"] == 2

    def test_an_operator_sets_an_accounts_limits_with_the_toingg_command(
        self, client: TestClient
    ) -> None:
        account_id, key = factories.account(credits=1000)
        factories.campaign(account_id)
        shown = subprocess.run(
            [sys.executable, "-m", "shared.cli", "accounts", "limits", account_id,
             "--api-rate", "1", "--api-burst", "2", "--max-concurrent-calls", "7", "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(shown.stdout) == {
            "accountId": account_id, "apiRatePerSecond": 1.0, "apiBurst": 2,
            "maxConcurrentCalls": 7,
        }  # fmt: skip
        responses = [client.get("/api/credits", params={"apiKey": key}) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 429]
        refused = subprocess.run(
            [sys.executable, "-m", "shared.cli", "accounts", "limits", account_id,
             "--api-burst", "0"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "'0' is not a positive whole number" in refused.stderr

    def test_three_times_the_rate_never_gets_more_than_the_bucket_allows(
        self, client: TestClient
    ) -> None:
        rate, burst, seconds = 5, 3, 2.0
        _, key = limited_account(rate=rate, burst=burst)
        accepted = refused = 0
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            status = client.get("/api/credits", params={"apiKey": key}).status_code
            accepted += status == 200
            refused += status == 429
            time.sleep(max(0.0, (accepted + refused) / (3 * rate) - elapsed))
        assert refused > 0
        assert accepted <= burst + rate * seconds

    def test_checkout_sessions_are_limited_too(
        self, client: TestClient, carrier_server: str
    ) -> None:
        _, key = limited_account(rate=0.5, burst=0)
        client.post("/api/create-checkout-session", json={"apikey": key, "credits": 1})
        again = client.post("/api/create-checkout-session", json={"apikey": key, "credits": 1})
        assert again.status_code == 429
