"""The whole path as a user meets it: API, queue, a real worker and beat, the sandbox carrier
(speaking Twilio's wire format) and its signed status callbacks back into the API."""

from shared import cli
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until


def place(api: Api, number: str, name: str = "Ada") -> str:
    response = api.post(
        "/api/make_toingg/", json={"campaign": "welcome", "name": name, "phoneNumber": number}
    )
    assert response.status_code == 200, response.text
    return response.json()["callId"]


def status_of(api: Api, call_id: str) -> str:
    return api.get(f"/api/calls/{call_id}").json()["status"]


class TestSingleCall:
    def test_reaches_the_carrier_and_completes_with_its_timeline(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        number = factories.phone_number()
        call_id = place(api, number, name="Grace")
        wait_until(lambda: status_of(api, call_id) == "completed", 30, message="call completed")
        call = api.get(f"/api/calls/{call_id}").json()
        [at_carrier] = carrier.calls(to=number)
        assert call["callSid"] == at_carrier["sid"]
        assert at_carrier["status"] == "completed"
        assert "Hello Grace, this is Toingg." in at_carrier["twiml"]
        assert [s["status"] for s in call["timeline"]] == [
            "queued", "initiated", "ringing", "in-progress", "completed"
        ]  # fmt: skip
        assert call["durationSeconds"] >= 1
        assert call["answeredAt"] and call["endedAt"]
        # Twilio's callback timestamps are whole seconds.
        assert call["createdAt"] < call["dialedAt"]
        assert call["dialedAt"][:19] <= call["answeredAt"][:19]

    def test_busy_number_ends_busy(self, api: Api, carrier: Carrier, stack: StackProcesses) -> None:
        number = factories.phone_number()
        carrier.configure(outcomes={number: "busy"})
        call_id = place(api, number)
        wait_until(lambda: status_of(api, call_id) == "busy", 30, message="call busy")

    def test_number_twilio_refuses_fails_with_twilios_code(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        call_id = place(api, "+15005550002")  # Twilio's test number that cannot be routed
        wait_until(lambda: status_of(api, call_id) == "failed", 30, message="call failed")
        error = api.get(f"/api/calls/{call_id}").json()["error"]
        assert error["code"] == "21612"
        assert error["message"]

    def test_throttled_creation_is_retried_and_rings_once(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        carrier.configure(ERROR_RATE_429=0.7)
        numbers = [factories.phone_number() for _ in range(5)]
        call_ids = [place(api, n) for n in numbers]
        carrier.configure(ERROR_RATE_429=0.0)
        for call_id in call_ids:
            wait_until(lambda: status_of(api, call_id) == "completed", 60, message=call_id)  # noqa: B023
        assert sorted(c["to"] for c in carrier.calls() if c["to"] in numbers) == sorted(numbers)


class TestHangUp:
    def test_hang_up_while_ringing_cancels_at_the_carrier(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        number = factories.phone_number()
        carrier.configure(outcomes={number: "hold"})
        call_id = place(api, number)
        wait_until(lambda: status_of(api, call_id) == "ringing", 30, message="ringing")
        sid = api.get(f"/api/calls/{call_id}").json()["callSid"]
        response = api.post("/api/hang_up_call", callSid=sid)
        assert response.status_code == 200
        assert response.json()["hangupRequested"] is True
        wait_until(lambda: status_of(api, call_id) == "canceled", 30, message="canceled")
        assert carrier.calls(to=number)[0]["status"] == "canceled"

    def test_hang_up_of_a_live_call_completes_it_at_the_carrier(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        number = factories.phone_number()
        carrier.configure(outcomes={number: "answer-hold"})
        call_id = place(api, number)
        wait_until(lambda: status_of(api, call_id) == "in-progress", 30, message="in progress")
        sid = api.get(f"/api/calls/{call_id}").json()["callSid"]
        assert api.post("/api/hang_up_call", callSid=sid).status_code == 200
        wait_until(lambda: status_of(api, call_id) == "completed", 30, message="completed")
        [at_carrier] = carrier.calls(to=number)
        assert at_carrier["status"] == "completed"
        assert api.get(f"/api/calls/{call_id}").json()["durationSeconds"] is not None


class TestBatch:
    def test_thousand_rows_three_invalid_five_repeated_ring_992_numbers_once(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        # Funded for every call's reservation at once (5 minutes each), so the batch runs at the
        # pace of the stack, not of credits coming back from settled calls.
        account_id, key = factories.account(credits=992 * 5)
        factories.campaign(account_id, name="welcome")
        api = Api(api_server, key)
        numbers = [factories.phone_number() for _ in range(992)]
        rows = [{"clientName": f"client {i}", "clientNumber": n} for i, n in enumerate(numbers)]
        for index, repeat in zip((10, 200, 400, 600, 800), numbers[:5], strict=True):
            rows.insert(index, {"clientName": "again", "clientNumber": repeat})
        for index, bad in zip((3, 500, 997), ("12", "not a phone", "+1234567890"), strict=True):
            rows.insert(index, {"clientName": "bad", "clientNumber": bad})
        assert len(rows) == 1000
        response = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["accepted"], body["duplicates"]) == (992, 5)
        assert [(r["index"], r["clientNumber"]) for r in body["rejected"]] == [
            (3, "12"), (500, "not a phone"), (997, "+1234567890")
        ]  # fmt: skip
        wanted = set(numbers)
        wait_until(
            lambda: len({c["to"] for c in carrier.calls()} & wanted) == 992,
            240,  # no time bound is promised; a loaded machine is slow
            interval=1,
            message="992 numbers at the carrier",
        )
        dialled = [c["to"] for c in carrier.calls() if c["to"] in wanted]
        assert len(dialled) == 992  # each number exactly once
        wait_until(
            lambda: api.get(f"/api/batches/{body['batchId']}").json()["status"] == "completed",
            120,
            interval=1,
            message="batch completed",
        )


class TestSms:
    def test_reaches_the_carrier_and_is_delivered(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        number = factories.phone_number()
        response = api.post(
            "/api/send_sms", json={"name": "John", "phoneNumber": number, "message": "Hello!"}
        )
        sms_id = response.json()["smsId"]
        wait_until(
            lambda: api.get(f"/api/sms/{sms_id}").json()["status"] == "delivered", 30, message="sms"
        )
        sms = api.get(f"/api/sms/{sms_id}").json()
        [at_carrier] = [m for m in carrier.messages() if m["to"] == number]
        assert sms["messageSid"] == at_carrier["sid"]
        assert at_carrier["body"] == "Hello!"
        assert sms["segments"] == 1


class TestCallerIdRemoved:
    def test_a_waiting_call_fails_when_its_turn_comes_and_never_rings(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        account_id, key = factories.account(credits=5)  # one 5-minute call's reservation
        api = Api(api_server, key)
        own = factories.caller_id(account_id)
        created = api.post("/api/campaigns", json={"name": "own", "script": "Hi", "callerId": own})
        assert created.status_code == 201, created.text
        numbers = [factories.phone_number(), factories.phone_number()]
        carrier.configure(outcomes={n: "hold" for n in numbers})
        batch = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "own", "numberList": [{"clientNumber": n} for n in numbers]},
        ).json()

        def calls() -> dict[str, dict]:  # type: ignore[type-arg]
            listed = api.get("/api/calls", batch=batch["batchId"]).json()["items"]
            return {c["status"]: c for c in listed}

        wait_until(lambda: calls().keys() == {"ringing", "insufficient-credits"}, 30, message="one")
        waiting = calls()["insufficient-credits"]
        assert cli.main(["accounts", "caller-ids", "remove", account_id, own]) == 0
        assert cli.main(["credits", "grant", account_id, "5", "--reason", "its turn"]) == 0

        wait_until(lambda: "failed" in calls(), 30, message="the waiting call failed")
        error = api.get(f"/api/calls/{waiting['id']}").json()["error"]
        assert error["code"] == "caller-id-not-allowed" and own in error["message"]
        assert carrier.calls(to=waiting["phoneNumber"]) == []
        # The call already ringing when the number was removed goes on; hang it up.
        ringing = calls()["ringing"]
        assert api.post("/api/hang_up_call", callSid=ringing["id"]).status_code == 200
