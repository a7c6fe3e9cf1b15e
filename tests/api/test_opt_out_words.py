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


def signed(client: TestClient, path: str, params: dict[str, str]) -> httpx.Response:
    settings = get_settings()
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(
        settings.PUBLIC_BASE_URL + path, params
    )
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def text_in(client: TestClient, phone: str, body: str) -> httpx.Response:
    params = {
        "From": phone,
        "To": get_settings().TWILIO_FROM_NUMBER,
        "Body": body,
        "MessageSid": "SM" + "1" * 32,
    }
    return signed(client, INBOUND, params)


@pytest.mark.parametrize(
    "body",
    [
        "STOP.",
        "Stop!",
        "stop!!",
        '"stop"',
        "Opt out",
        "OPT-OUT",
        "stop all",
        "Quit.",
        "\uff33\uff34\uff2f\uff30",
        "STOP\u200b",
    ],
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


@pytest.mark.parametrize("word", ["START", "YES", "unstop"])
def test_a_text_of_start_does_not_undo_the_opt_out_key_pressed_in_a_call(
    api: KeyedClient, word: str
) -> None:
    # A YES answering some text from the number is no consent to the calls the callee
    # refused by key: those stay refused until the account itself takes the number off.
    campaign = api.post(
        "/api/campaigns",
        json={"name": f"keyed-{word}", "script": "Hello {name}.", "optOutDigit": "9"},
    )
    assert campaign.status_code in (200, 201), campaign.text
    phone = factories.phone_number()
    placed = api.post("/api/make_toingg", json={"campaign": f"keyed-{word}", "phoneNumber": phone})
    assert placed.status_code == 200, placed.text
    call_id = placed.json()["callId"]
    pressed = signed(api.client, f"/api/twilio/opt-out/{call_id}", {"Digits": "9"})
    assert pressed.status_code == 200, pressed.text
    assert api.get(f"/api/dnc/{phone}").json()["source"] == "keypress"

    assert text_in(api.client, phone, word).status_code == 200
    entry = api.get(f"/api/dnc/{phone}").json()
    assert (entry["listed"], entry["source"]) == (True, "keypress")
    again = api.post("/api/make_toingg", json={"campaign": f"keyed-{word}", "phoneNumber": phone})
    assert again.status_code == 422
