"""Opt-outs end to end, through the sandbox playing the callee's phone: a text of STOP (or
START, or HELP) sent to the API as Twilio sends it, a key pressed during a call, and Twilio's
21610 refusal of a text to a phone that texted STOP to Twilio itself. Each lands on the
do-not-contact list of the accounts concerned, with its source and its event."""

import httpx

from shared.config import get_settings
from tests import factories
from tests.e2e.optouts import (
    INBOUND,
    OUR_NUMBER,
    call_of,
    completed_call,
    delivered_sms,
    dnc_events,
    on_list,
    place,
    send_sms,
    signed_post,
    sms_status,
    text_in,
)
from tests.stack import Api, Carrier, StackProcesses, wait_until


class TestStopByText:
    def test_stop_lists_each_account_that_reached_the_phone_and_start_takes_it_back(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        texter, caller, stranger = customers
        phone = factories.phone_number()
        delivered_sms(texter, phone)
        completed_call(caller, phone)
        delivered_sms(stranger, factories.phone_number())  # from our number, to someone else

        answer = text_in(carrier, phone, "  Stop ")
        assert answer["status_code"] == 200
        assert answer["replies"] == []  # Twilio confirms a STOP itself
        for api in (texter, caller):
            entry = on_list(api, phone)
            assert (entry["listed"], entry["source"]) == (True, "sms_keyword")
            assert "Stop" in entry["reason"] and OUR_NUMBER in entry["reason"]
            [event] = dnc_events(api, phone)
            assert event["type"] == "dnc.added"
            assert event["data"]["source"] == "sms_keyword"
        assert on_list(stranger, phone)["listed"] is False
        assert dnc_events(stranger, phone) == []

        # The next text and the next call are refused, and nothing more reaches the phone.
        refused = send_sms(texter, phone)
        assert refused.status_code == 422, refused.text
        assert "do-not-contact" in refused.text
        assert place(caller, phone).status_code == 422
        assert place(texter, phone).status_code == 422
        assert len([m for m in carrier.messages() if m["to"] == phone]) == 1
        assert len(carrier.calls(to=phone)) == 1
        # Another account's list is its own, but Twilio refuses any text from that number to
        # the phone (21610), which lists it there too.
        sent = send_sms(stranger, phone)
        assert sent.status_code == 200, sent.text
        sms_id = sent.json()["smsId"]
        wait_until(lambda: sms_status(stranger, sms_id) == "failed", 30, message="sms failed")
        assert on_list(stranger, phone)["source"] == "carrier_21610"

        assert text_in(carrier, phone, "start")["status_code"] == 200
        entry = on_list(texter, phone)
        assert (entry["listed"], entry["source"]) == (False, "sms_keyword")
        assert [(c["action"], c["source"]) for c in entry["history"]] == [
            ("added", "sms_keyword"),
            ("removed", "sms_keyword"),
        ]
        delivered_sms(texter, phone)  # and Twilio sends it again too

    def test_start_leaves_a_number_the_account_listed_itself(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        phone = factories.phone_number()
        delivered_sms(api, phone)
        listed = api.post("/api/dnc", json={"number": phone, "reason": "asked us by phone"})
        assert listed.status_code in (200, 201), listed.text
        text_in(carrier, phone, "STOP")
        text_in(carrier, phone, "UNSTOP")
        entry = on_list(api, phone)
        assert (entry["listed"], entry["source"], entry["reason"]) == (
            True,
            "api",
            "asked us by phone",
        )

    def test_every_opt_out_word_in_any_case_and_only_the_whole_message(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        words = ["stop", "STOPALL", "Unsubscribe", "cancel", "END", "quit", "revoke", "OptOut"]
        phones = [factories.phone_number() for _ in range(len(words) + 1)]
        for phone in phones:
            delivered_sms(api, phone)
        for word, phone in zip(words, phones, strict=False):
            text_in(carrier, phone, f"\n{word} ")
            assert on_list(api, phone)["listed"] is True, word
        chatty = phones[-1]
        answer = text_in(carrier, chatty, "please stop calling me")
        assert answer["status_code"] == 200 and answer["replies"] == []
        assert on_list(api, chatty)["listed"] is False

    def test_help_is_answered_with_help_text(self, carrier: Carrier, api_server: str) -> None:
        answer = text_in(carrier, factories.phone_number(), "help")
        assert answer["status_code"] == 200
        assert answer["replies"] == [get_settings().HELP_TEXT]


class TestTheWebhook:
    def test_a_forged_signature_is_403_and_lists_nobody(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        phone = factories.phone_number()
        delivered_sms(api, phone)
        params = {"From": phone, "To": OUR_NUMBER, "Body": "STOP", "MessageSid": "SM" + "0" * 32}
        assert signed_post(INBOUND, params, signature="forged").status_code == 403
        assert signed_post(INBOUND, params, signature="").status_code == 403
        assert on_list(api, phone)["listed"] is False

    def test_what_twilio_never_sends_is_4xx_not_500(self, api_server: str) -> None:
        missing = signed_post(INBOUND, {"To": OUR_NUMBER, "Body": "STOP"})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "From"]
        bad = signed_post(INBOUND, {"From": "12", "To": OUR_NUMBER, "Body": "STOP"})
        assert bad.status_code == 422 and "From" in bad.text
        garbage = httpx.post(
            get_settings().PUBLIC_BASE_URL + INBOUND,
            content=b"\xff\x00{not a form",
            headers={"Content-Type": "application/json", "X-Twilio-Signature": "x"},
        )
        assert 400 <= garbage.status_code < 500

    def test_another_text_is_taken_with_an_empty_answer(self, api_server: str) -> None:
        params = {"From": factories.phone_number(), "To": OUR_NUMBER, "Body": "thanks!"}
        answer = signed_post(INBOUND, params)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/xml")
        assert answer.text.endswith("<Response />")


class TestCarrier21610:
    def test_a_text_twilio_refuses_for_a_stop_lists_the_number(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        phone = factories.phone_number()
        # The phone texted STOP to Twilio alone (its webhook went nowhere): only Twilio knows.
        carrier.configure(SMS_URL="http://127.0.0.1:9/nowhere")
        text_in(carrier, phone, "STOP")
        response = send_sms(api, phone)
        assert response.status_code == 200, response.text
        sms_id = response.json()["smsId"]
        wait_until(lambda: sms_status(api, sms_id) == "failed", 30, message="sms failed")
        sms = api.get(f"/api/sms/{sms_id}").json()
        assert sms["errorCode"] == "21610", sms
        entry = on_list(api, phone)
        assert (entry["listed"], entry["source"]) == (True, "carrier_21610")
        assert "21610" in entry["reason"]
        assert [e["data"]["source"] for e in dnc_events(api, phone)] == ["carrier_21610"]
        assert send_sms(api, phone).status_code == 422


class TestKeypress:
    def test_the_opt_out_key_lists_the_number_hangs_up_and_the_next_call_never_rings(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        campaign = api.get("/api/campaigns").json()["items"][0]
        # One line: the second call, accepted before the key is pressed, waits for the first
        # to end, and is dialed only after the number is on the list.
        limited = api.http.patch(
            f"/api/campaigns/{campaign['id']}",
            json={"maxConcurrentCalls": 1},
            params={"apiKey": api.api_key},
        )
        assert limited.status_code == 200, limited.text
        phone = factories.phone_number()
        carrier.configure(outcomes={phone: "press:9"})
        first = place(api, phone).json()["callId"]
        second = place(api, phone).json()["callId"]
        wait_until(lambda: call_of(api, second)["status"] == "suppressed", 30, message="suppressed")
        call = call_of(api, first)
        assert call["status"] == "completed"
        assert call["optedOut"] is True
        [at_carrier] = carrier.calls(to=phone)
        # The offer opens the message, inside the <Gather> that listens all through it.
        twiml = at_carrier["twiml"]
        assert '<Gather action="' in twiml and f"/api/twilio/opt-out/{call['id']}" in twiml
        assert twiml.index("press 9") < twiml.index("Hello Ada, Toingg here.")
        [gather] = at_carrier["gathers"]
        assert gather["status_code"] == 200
        assert get_settings().OPT_OUT_CONFIRMATION in gather["twiml"]
        assert gather["twiml"].endswith("<Hangup /></Response>")
        entry = on_list(api, phone)
        assert (entry["listed"], entry["source"]) == (True, "keypress")
        assert call["id"] in entry["reason"]
        assert [e["data"]["source"] for e in dnc_events(api, phone)] == ["keypress"]
        # The other accounts' lists are their own.
        assert on_list(customers[1], phone)["listed"] is False

        assert call_of(api, second)["error"]["code"] == "do-not-contact"
        refused = place(api, phone)
        assert refused.status_code == 422 and "do-not-contact" in refused.text
        assert len(carrier.calls(to=phone)) == 1

    def test_another_key_starts_the_message_again_and_lists_nothing(
        self, customers: list[Api], carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customers[0]
        phone = factories.phone_number()
        carrier.configure(outcomes={phone: "press:1"})
        call = completed_call(api, phone)
        assert call["optedOut"] is False
        [gather] = carrier.calls(to=phone)[0]["gathers"]
        assert "<Gather" in gather["twiml"] and "Hello Ada" in gather["twiml"]
        assert on_list(api, phone)["listed"] is False
