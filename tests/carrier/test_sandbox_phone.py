"""The sandbox plays the callee's side too: a phone that presses a key into a <Gather>, and a
phone that texts back, each reaching the application signed as Twilio signs; and Twilio's own
opt-out handling, which refuses a text to a phone that texted STOP (21610) until START."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from shared.config import get_settings
from tests import factories
from tests.stack import Carrier, wait_until

FROM = "+15005550006"
GATHER = (
    '<Response><Gather numDigits="1" action="/pressed"><Say>Press 9 to stop.</Say>'
    "<Say>Hello.</Say></Gather></Response>"
)


class Application:
    """A stand-in for the API: answers each path with its TwiML, and keeps each request with
    whether its X-Twilio-Signature verified."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.requests: list[dict[str, object]] = []
        validator = RequestValidator(get_settings().TWILIO_AUTH_TOKEN)
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                url = f"{app.url}{self.path}"
                app.requests.append(
                    {
                        "path": self.path,
                        "params": params,
                        "verified": validator.validate(
                            url, params, self.headers.get("X-Twilio-Signature", "")
                        ),
                    }
                )
                body = app.answers.get(self.path, "<Response/>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, object]]:
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def application() -> Iterator[Application]:
    app = Application(
        {
            "/voice": GATHER,
            "/pressed": "<Response><Say>Goodbye.</Say><Hangup/></Response>",
            "/sms": "<Response><Message>Help is here.</Message></Response>",
        }
    )
    yield app
    app.server.shutdown()


@pytest.fixture
def client(carrier: Carrier, carrier_server: str) -> Client:
    settings = get_settings()
    twilio = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
    twilio.api.base_url = carrier_server
    return twilio


class TestPressingAKey:
    def test_the_digit_is_posted_signed_to_the_gathers_action_and_its_answer_ends_the_call(
        self, client: Client, carrier: Carrier, application: Application
    ) -> None:
        number = factories.phone_number()
        carrier.configure(outcomes={number: "press:9"})
        call = client.calls.create(to=number, from_=FROM, url=f"{application.url}/voice")
        wait_until(lambda: client.calls(call.sid).fetch().status == "completed", 10)
        [pressed] = application.to("/pressed")
        assert pressed["verified"] is True
        assert pressed["params"]["Digits"] == "9"  # type: ignore[index]
        assert pressed["params"]["CallSid"] == call.sid  # type: ignore[index]
        [gather] = carrier.calls(to=number)[0]["gathers"]
        assert gather["digits"] == "9" and "<Hangup/>" in gather["twiml"]

    def test_without_a_gather_the_key_does_nothing_and_the_message_plays_out(
        self, client: Client, carrier: Carrier, application: Application
    ) -> None:
        number = factories.phone_number()
        carrier.configure(outcomes={number: "press:9"})
        call = client.calls.create(to=number, from_=FROM, url=f"{application.url}/sms")
        wait_until(lambda: client.calls(call.sid).fetch().status == "completed", 10)
        assert application.to("/pressed") == []
        assert carrier.calls(to=number)[0]["gathers"] == []

    def test_an_outcome_it_does_not_know_is_422_naming_the_number(self, carrier: Carrier) -> None:
        response = carrier.http.post(
            "/sandbox/config", json={"outcomes": {"+14155550100": "press:x"}}
        )
        assert response.status_code == 422
        assert "+14155550100" in response.text and "press:N" in response.text


class TestTextingBack:
    def test_the_text_reaches_the_numbers_sms_url_signed_and_its_reply_is_kept(
        self, carrier: Carrier, application: Application
    ) -> None:
        carrier.configure(SMS_URL=f"{application.url}/sms")
        phone = factories.phone_number()
        answer = carrier.http.post(
            "/sandbox/sms/inbound", json={"from": phone, "to": FROM, "body": " help "}
        ).json()
        assert (answer["status_code"], answer["replies"]) == (200, ["Help is here."])
        [text] = application.to("/sms")
        assert text["verified"] is True
        params = text["params"]
        assert (params["From"], params["To"], params["Body"]) == (phone, FROM, " help ")  # type: ignore[index]
        assert params["MessageSid"].startswith("SM")  # type: ignore[index]
        assert carrier.http.get("/sandbox/sms/inbound").json() == [answer]

    def test_a_phone_that_texted_stop_is_refused_21610_until_it_texts_start(
        self, client: Client, carrier: Carrier, application: Application
    ) -> None:
        carrier.configure(SMS_URL=f"{application.url}/sms")
        phone, other = factories.phone_number(), factories.phone_number()

        def text(body: str) -> None:
            carrier.http.post(
                "/sandbox/sms/inbound", json={"from": phone, "to": FROM, "body": body}
            ).raise_for_status()

        text("Stop")
        with pytest.raises(TwilioRestException) as error:
            client.messages.create(to=phone, from_=FROM, body="hello")
        assert (error.value.status, error.value.code) == (400, 21610)
        # Twilio's own shape, as its REST API answers it.
        settings = get_settings()
        refused = carrier.http.post(
            f"/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json",
            data={"To": phone, "From": FROM, "Body": "hello"},
            auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN),
        )
        assert refused.status_code == 400
        assert refused.json() == {
            "code": 21610,
            "message": "Attempt to send to unsubscribed recipient",
            "more_info": "https://www.twilio.com/docs/errors/21610",
            "status": 400,
        }
        client.messages.create(to=other, from_=FROM, body="hello")  # only that phone
        text("stop calling me")  # not the keyword alone: nothing changes
        with pytest.raises(TwilioRestException):
            client.messages.create(to=phone, from_=FROM, body="hello")
        text("START")
        assert client.messages.create(to=phone, from_=FROM, body="hello").status == "queued"

    def test_a_text_without_valid_numbers_is_422(self, carrier: Carrier) -> None:
        response = carrier.http.post(
            "/sandbox/sms/inbound", json={"from": "12", "to": FROM, "body": "STOP"}
        )
        assert response.status_code == 422 and "from" in response.text
