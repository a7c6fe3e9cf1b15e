"""A campaign's opt-out digit, kept by each call accepted with it, offered first in a <Gather>
and honoured once pressed: Twilio's requests into the API signed as Twilio signs them, with no
worker, so nothing but the test moves the calls."""

import pytest
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.models import Call
from shared.optouts import service as optouts
from tests import factories
from tests.concurrency import Racer
from tests.e2e.optouts import call_of, on_list, place, signed_post
from tests.stack import Api


def press(session: Session, call_id: str) -> bool:
    call = session.get(Call, call_id)
    assert call is not None
    return optouts.key_pressed(session, call, "9")


class TestTheCallKeepsItsDigit:
    def test_a_call_keeps_the_opt_out_digit_it_was_accepted_with(
        self, customers: list[Api]
    ) -> None:
        api = customers[0]
        campaign = api.get("/api/campaigns").json()["items"][0]
        first = place(api, factories.phone_number()).json()["callId"]
        changed = api.http.patch(
            f"/api/campaigns/{campaign['id']}",
            json={"optOutDigit": ""},
            params={"apiKey": api.api_key},
        )
        assert changed.status_code == 200 and changed.json()["optOutDigit"] is None
        later = place(api, factories.phone_number()).json()["callId"]
        offered = signed_post(f"/api/twilio/voice/{first}", {"CallSid": "CA" + "1" * 32}).text
        assert "<Gather" in offered and "press 9" in offered
        plain = signed_post(f"/api/twilio/voice/{later}", {"CallSid": "CA" + "2" * 32}).text
        assert "<Gather" not in plain and "Hello Ada" in plain

        # The key is the first call's, pressed twice: listed once, hung up both times.
        for _ in range(2):
            pressed = signed_post(f"/api/twilio/opt-out/{first}", {"Digits": "9"})
            assert pressed.status_code == 200
            assert pressed.text.endswith("<Hangup /></Response>")
        assert call_of(api, first)["optedOut"] is True
        phone = call_of(api, first)["phoneNumber"]
        assert len(on_list(api, phone)["history"]) == 1
        # A key posted for the later call, which offers none, lists nothing.
        signed_post(f"/api/twilio/opt-out/{later}", {"Digits": "9"})
        assert call_of(api, later)["optedOut"] is False

    def test_a_batchs_calls_offer_the_key_too(self, customers: list[Api]) -> None:
        api = customers[0]
        response = api.post(
            "/api/make_batch_toingg",
            json={
                "campaign": "offers",
                "numberList": [{"clientName": "Cy", "clientNumber": factories.phone_number()}],
            },
        )
        assert response.status_code == 200, response.text
        [call] = api.get("/api/calls", batch=response.json()["batchId"]).json()["items"]
        offered = signed_post(f"/api/twilio/voice/{call['id']}", {"CallSid": "CA" + "3" * 32})
        assert "<Gather" in offered.text and "press 9" in offered.text
        assert f"/api/twilio/opt-out/{call['id']}" in offered.text

    def test_the_key_posted_twice_at_once_lists_the_number_once(self, customers: list[Api]) -> None:
        api = customers[0]
        call_id = place(api, factories.phone_number()).json()["callId"]
        with session_scope() as first:
            call = first.get(Call, call_id)
            assert call is not None and optouts.key_pressed(first, call, "9")
            # The first press holds the call's row until it commits; the second waits for it,
            # then finds the call opted out already and lists nothing more.
            second = Racer(lambda session: press(session, call_id))
            second.wait_until_blocked()
        assert second.join() is True
        assert call_of(api, call_id)["optedOut"] is True
        history = on_list(api, call_of(api, call_id)["phoneNumber"])["history"]
        assert [(c["action"], c["source"]) for c in history] == [("added", "keypress")]

    def test_a_forged_key_is_403(self, customers: list[Api]) -> None:
        api = customers[0]
        call_id = place(api, factories.phone_number()).json()["callId"]
        forged = signed_post(f"/api/twilio/opt-out/{call_id}", {"Digits": "9"}, signature="x")
        assert forged.status_code == 403
        assert call_of(api, call_id)["optedOut"] is False

    @pytest.mark.parametrize("digit", ["10", "a", "", " 9"])
    def test_an_opt_out_digit_other_than_one_key_is_422_naming_it(
        self, customers: list[Api], digit: str
    ) -> None:
        response = customers[0].post(
            "/api/campaigns", json={"name": "bad", "script": "Hi", "optOutDigit": digit}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "optOutDigit"]
