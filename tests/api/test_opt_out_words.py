"""A text of an opt-out word reaches the list however the callee punctuates or spaces it: a
number that asked not to be called is never rung again because it wrote "Stop." or "opt out"."""

import httpx
import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from shared.config import get_settings
from shared.optouts.keywords import Keyword, keyword
from tests import factories
from tests.api.conftest import KeyedClient

INBOUND = "/api/twilio/sms-inbound"


def text_in(client: TestClient, phone: str, body: str) -> httpx.Response:
    settings = get_settings()
    params = {
        "From": phone,
        "To": settings.TWILIO_FROM_NUMBER,
        "Body": body,
        "MessageSid": "SM" + "1" * 32,
    }
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(
        settings.PUBLIC_BASE_URL + INBOUND, params
    )
    return client.post(INBOUND, data=params, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize(
    "body", ["STOP.", "Stop!", "stop!!", '"stop"', "Opt out", "OPT-OUT", "stop all", "Quit."]
)
def test_an_opt_out_word_with_punctuation_or_spacing_lists_the_number(
    api: KeyedClient, body: str
) -> None:
    phone = factories.phone_number()
    placed = api.post("/api/make_toingg", json={"campaign": "welcome", "phoneNumber": phone})
    assert placed.status_code == 200, placed.text
    assert text_in(api.client, phone, body).status_code == 200
    entry = api.get(f"/api/dnc/{phone}").json()
    assert (entry["listed"], entry["source"]) == (True, "sms_keyword"), body
    again = api.post("/api/make_toingg", json={"campaign": "welcome", "phoneNumber": phone})
    assert again.status_code == 422, body


def test_only_the_opt_out_words_are_read_loosely() -> None:
    # Taking a number off the list, or a sentence that merely holds the word, stays exact.
    assert keyword("Yes!") is None
    assert keyword("start.") is None
    assert keyword("please stop calling me") is None
    assert keyword("don't stop") is None
    assert keyword(" START ") is Keyword.START
