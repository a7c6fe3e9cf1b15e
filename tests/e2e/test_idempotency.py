"""A client that retries a call with its Idempotency-Key (its first request timed out, say)
rings the person once and pays once: through a real worker and the sandbox carrier."""

import httpx

from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until


def place(api: Api, body: dict[str, str], key: str) -> httpx.Response:
    return api.http.post(
        "/api/make_toingg/", json=body, params={"apiKey": api.api_key},
        headers={"Idempotency-Key": key},
    )  # fmt: skip


class TestRetriedCall:
    def test_rings_once_and_reserves_once(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        number = factories.phone_number()
        body = {"campaign": "welcome", "name": "Ada", "phoneNumber": number}
        answers = [place(api, body, "retry-after-timeout") for _ in range(3)]
        assert {(a.status_code, a.content) for a in answers} == {(200, answers[0].content)}
        call_id = answers[0].json()["callId"]

        def completed() -> bool:
            return api.get(f"/api/calls/{call_id}").json()["status"] == "completed"

        wait_until(completed, 30, message="call completed")
        assert len(carrier.calls(to=number)) == 1
        assert len(api.get("/api/calls").json()["items"]) == 1
        entries = api.get("/api/credits").json()["entries"]
        reservations = [e for e in entries if e["reason"] == "call_reservation"]
        assert [e["subjectId"] for e in reservations] == [call_id]
