"""The carrier's fault switches, driven with the official twilio SDK as the workers drive it: a
429 that creates nothing, a call created and then answered 500, a call created and then its
connection closed with no answer; seeded, so a run's faults repeat."""

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from shared.config import get_settings
from tests import factories
from tests.stack import Carrier

FROM = "+15005550006"


@pytest.fixture
def client(carrier: Carrier, carrier_server: str) -> Client:
    settings = get_settings()
    twilio = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
    twilio.api.base_url = carrier_server
    return twilio


def create(client: Client, to: str) -> str:
    """What the creation met: created, or the fault the client saw."""
    try:
        client.calls.create(to=to, from_=FROM, twiml="<Response><Say>Hi</Say></Response>")
    except TwilioRestException as exc:
        return f"{exc.status} {exc.code}"
    except requests.ConnectionError as exc:
        return "dropped" if "RemoteDisconnected" in repr(exc) else repr(exc)
    return "created"


class TestFaults:
    def test_a_429_is_twilios_and_creates_nothing(self, client: Client, carrier: Carrier) -> None:
        carrier.configure(faults={"create_429": 1.0})
        number = factories.phone_number()
        response = client.http_client.request(
            "POST",
            f"{client.api.base_url}/2010-04-01/Accounts/{client.account_sid}/Calls.json",
            data={"To": number, "From": FROM, "Twiml": "<Response/>"},
            auth=(client.username, client.password),
        )
        assert response.status_code == 429
        assert response.text.startswith("{")
        assert create(client, number) == "429 20429"
        assert carrier.calls(to=number) == []

    def test_a_500_after_creating_leaves_the_call_ringing(
        self, client: Client, carrier: Carrier
    ) -> None:
        carrier.configure(faults={"create_500_after": 1.0})
        number = factories.phone_number()
        assert create(client, number) == "500 20500"
        assert len(carrier.calls(to=number)) == 1

    def test_a_dropped_connection_after_creating_has_no_answer(
        self, client: Client, carrier: Carrier
    ) -> None:
        carrier.configure(faults={"create_drop_after": 1.0})
        number = factories.phone_number()
        assert create(client, number) == "dropped"
        assert len(carrier.calls(to=number)) == 1
        carrier.configure(faults={})
        assert create(client, number) == "created"  # the next connection is served
        assert len(carrier.calls(to=number)) == 2

    def test_the_same_seed_gives_the_same_faults(self, client: Client, carrier: Carrier) -> None:
        faults = {"create_429": 0.3, "create_500_after": 0.2, "create_drop_after": 0.2, "seed": 7}
        runs = []
        for _ in range(2):
            carrier.configure(faults=faults)
            runs.append([create(client, factories.phone_number()) for _ in range(30)])
        assert runs[0] == runs[1]
        served = carrier.http.get("/sandbox/faults").json()
        assert served == {
            "429": runs[1].count("429 20429"),
            "500-after": runs[1].count("500 20500"),
            "drop-after": runs[1].count("dropped"),
        }
        assert set(runs[0]) == {"created", "429 20429", "500 20500", "dropped"}

    def test_shares_over_one_are_refused(self, carrier: Carrier) -> None:
        response = carrier.http.post(
            "/sandbox/config", json={"faults": {"create_429": 0.6, "create_500_after": 0.6}}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "faults"]
