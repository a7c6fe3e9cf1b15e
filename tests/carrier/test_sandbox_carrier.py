"""The sandbox carrier speaks Twilio's wire format: driven here with the official twilio SDK, as
the workers drive it."""

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from sandbox.twilio.config import Behaviour
from sandbox.twilio.resources import Call
from sandbox.twilio.simulator import Simulator
from shared.config import get_settings
from tests import factories
from tests.stack import Carrier, wait_until

FROM = "+15005550006"


@pytest.fixture
def client(carrier: Carrier, carrier_server: str) -> Client:
    settings = get_settings()
    twilio = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
    twilio.api.base_url = carrier_server
    return twilio


def create(client: Client, to: str, **params: object):  # type: ignore[no-untyped-def]
    return client.calls.create(
        to=to, from_=FROM, twiml="<Response><Say>Hi</Say></Response>", **params
    )


class TestCalls:
    def test_create_fetch_and_list_with_start_time_and_pages(self, client: Client) -> None:
        number = factories.phone_number()
        sids = {create(client, number).sid for _ in range(5)}
        call = client.calls(next(iter(sids))).fetch()
        assert (call.to, call._from, call.direction) == (number, FROM, "outbound-api")
        wait_until(lambda: all(client.calls(s).fetch().start_time for s in sids), 10)
        today = datetime.now(UTC).date()
        found = client.calls.list(to=number, start_time_after=str(today), page_size=2)
        assert {c.sid for c in found} == sids  # three pages, followed by the SDK
        tomorrow = str(today + timedelta(days=1))
        assert client.calls.list(to=number, start_time_after=tomorrow) == []
        assert len(client.calls.list(to=number, start_time_before=tomorrow)) == 5
        assert len(client.calls.list(to=number, start_time=str(today))) == 5

    def test_over_the_calls_per_second_a_call_waits_queued_with_no_start_time(
        self, client: Client, carrier: Carrier
    ) -> None:
        carrier.configure(CALLS_PER_SECOND=0.5)
        number = factories.phone_number()
        first, second = create(client, number), create(client, number)
        held = client.calls(second.sid).fetch()
        assert (held.status, held.start_time) == ("queued", None)
        assert 1000 < int(held.queue_time) <= 2000  # milliseconds it waits for its turn
        # Filters on start_time do not see it, whatever the instant or day given; Status does.
        wait_until(lambda: client.calls(first.sid).fetch().start_time is not None, 5)
        started = client.calls.list(
            to=number, start_time_after=datetime.now(UTC) - timedelta(days=1)
        )
        assert [c.sid for c in started] == [first.sid]
        assert [c.sid for c in client.calls.list(to=number, status="queued")] == [second.sid]
        wait_until(lambda: client.calls(second.sid).fetch().start_time is not None, 10)
        assert client.calls(second.sid).fetch().status != "queued"

    def test_only_a_completed_call_has_an_end_time_and_busy_ones_no_duration(
        self, client: Client, carrier: Carrier
    ) -> None:
        # Twilio's description: end_time is "Empty if the call did not complete successfully",
        # duration "empty for busy, failed, unanswered, or ongoing calls".
        answered, busy, unanswered, held = (factories.phone_number() for _ in range(4))
        carrier.configure(
            outcomes={busy: "busy", unanswered: "no-answer", held: "hold"}, RING_SECONDS=0.2
        )
        sids = {n: create(client, n).sid for n in (answered, busy, unanswered, held)}
        ended = ("completed", "busy", "no-answer")
        wait_until(
            lambda: (
                all(client.calls(sids[n]).fetch().status in ended for n in sids if n != held)
                and client.calls(sids[held]).fetch().status == "ringing"
            ),
            15,
        )
        client.calls(sids[held]).update(status="canceled")
        calls = {n: client.calls(sid).fetch() for n, sid in sids.items()}
        assert {n: (c.status, c.end_time is None) for n, c in calls.items()} == {
            answered: ("completed", False),
            busy: ("busy", True),
            unanswered: ("no-answer", True),
            held: ("canceled", True),
        }
        assert calls[busy].duration is None and calls[unanswered].duration is None
        assert calls[answered].duration is not None
        assert all(c.start_time is not None for c in calls.values())  # each was dialed
        today = datetime.now(UTC).date()
        listed = {
            c.sid
            for n in sids
            for c in client.calls.list(
                to=n, end_time_after=datetime.combine(today, datetime.min.time(), UTC)
            )
        }
        assert listed == {sids[answered]}

    def test_a_date_filter_that_is_no_date_is_400_20001_naming_it(self, client: Client) -> None:
        number = factories.phone_number()
        create(client, number)
        base = f"{client.api.base_url}/2010-04-01/Accounts/{client.account_sid}"
        for path, parameter in (
            ("Calls.json", "StartTime>"),
            ("Calls.json", "EndTime<"),
            ("Calls.json", "StartTime"),
            ("Messages.json", "DateSent>"),
        ):
            response = client.http_client.request(
                "GET",
                f"{base}/{path}",
                params={"To": number, parameter: "garbage"},
                auth=(client.username, client.password),
            )
            assert response.status_code == 400, (parameter, response.text)
            body = json.loads(response.text)
            assert body["code"] == 20001
            assert body["message"].startswith(f"Invalid {parameter}: garbage")
        # The SDK's list reports it as a page it could not fetch, with Twilio's answer.
        with pytest.raises(TwilioException, match=r'HTTP 400 .*"code":20001'):
            client.calls.list(to=number, start_time_after="not a day")  # type: ignore[arg-type]

    def test_validation_errors_have_twilios_codes(self, client: Client) -> None:
        cases = {
            21211: lambda: create(client, "12"),
            21205: lambda: client.calls.create(to="+14155552671", from_=FROM),
            21612: lambda: create(client, "+15005550002"),
            21610: lambda: create(client, "+15005550004"),
        }
        for code, request in cases.items():
            with pytest.raises(TwilioRestException) as error:
                request()
            assert (error.value.status, error.value.code) == (400, code)

    def test_wrong_credentials_are_401_20003(self, client: Client, carrier_server: str) -> None:
        intruder = Client(get_settings().TWILIO_ACCOUNT_SID, "wrong-token")
        intruder.api.base_url = carrier_server
        with pytest.raises(TwilioRestException) as error:
            create(intruder, "+14155552671")
        assert (error.value.status, error.value.code) == (401, 20003)

    def test_hold_then_cancel_and_answer_hold_then_complete(
        self, client: Client, carrier: Carrier
    ) -> None:
        ringing, live = factories.phone_number(), factories.phone_number()
        carrier.configure(outcomes={ringing: "hold", live: "answer-hold"})
        held, answered = create(client, ringing), create(client, live)
        wait_until(lambda: client.calls(answered.sid).fetch().status == "in-progress", 10)
        assert client.calls(held.sid).fetch().status == "ringing"
        assert client.calls(held.sid).update(status="canceled").status == "canceled"
        assert client.calls(answered.sid).update(status="completed").status == "completed"
        with pytest.raises(TwilioRestException) as error:
            client.calls(answered.sid).update(status="completed")
        assert error.value.code == 21220

    def test_injected_throttling_creates_nothing(self, client: Client, carrier: Carrier) -> None:
        carrier.configure(ERROR_RATE_429=1.0)
        number = factories.phone_number()
        with pytest.raises(TwilioRestException) as error:
            create(client, number)
        assert (error.value.status, error.value.code) == (429, 20429)
        assert carrier.calls(to=number) == []


class TestMessages:
    def test_create_segments_and_delivery(self, client: Client, carrier: Carrier) -> None:
        number = factories.phone_number()
        message = client.messages.create(to=number, from_=FROM, body="x" * 161)
        assert message.num_segments == "2"
        wait_until(lambda: client.messages(message.sid).fetch().status == "delivered", 10)
        with pytest.raises(TwilioRestException) as error:
            client.messages.create(to="+15005550009", from_=FROM, body="hi")
        assert error.value.code == 21614

    def test_over_the_messages_per_second_a_message_waits_queued_with_no_date_sent(
        self, client: Client, carrier: Carrier
    ) -> None:
        carrier.configure(MESSAGES_PER_SECOND=0.5)
        number = factories.phone_number()
        first = client.messages.create(to=number, from_=FROM, body="one")
        second = client.messages.create(to=number, from_=FROM, body="two")
        wait_until(lambda: client.messages(first.sid).fetch().date_sent is not None, 5)
        held = client.messages(second.sid).fetch()
        assert (held.status, held.date_sent) == ("queued", None)
        today = str(datetime.now(UTC).date())
        sent = client.messages.list(to=number, date_sent_after=today)
        assert [m.sid for m in sent] == [first.sid]
        assert {m.sid for m in client.messages.list(to=number)} == {first.sid, second.sid}
        wait_until(lambda: client.messages(second.sid).fetch().date_sent is not None, 10)


def test_a_call_ended_as_its_next_step_comes_stays_ended() -> None:
    # The hang-up is handled while the call's play is between a pause that timed out and its
    # next status (asyncio's wait_for yields while it cancels the timed-out wait): as on
    # Twilio, an ended call never rings again.
    sim = Simulator("AC" + "0" * 32, "token", Behaviour(), seed=1)
    call = Call(
        sid="CA" + "1" * 32,
        account_sid=sim.account_sid,
        to=factories.phone_number(),
        from_=FROM,
        params={},
        created_at=time.time(),
    )
    sim.calls[call.sid] = call
    sim._ended[call.sid] = asyncio.Event()
    sim.end_call(call, "canceled")
    sim._set_status(call, "ringing")
    assert call.status == "canceled"
    assert [step["status"] for step in call.history] == ["canceled"]


class TestWebhookTimeout:
    def test_the_application_has_twilios_fifteen_seconds_to_answer(self) -> None:
        """Twilio waits 15 s for the application's answer (its default read timeout): a status
        callback answered in 11 s is delivered, not lost."""
        from aiohttp import web

        async def scenario() -> dict:  # type: ignore[type-arg]
            async def slow(_request: web.Request) -> web.Response:
                await asyncio.sleep(11)
                return web.Response(status=204)

            app = web.Application()
            app.router.add_post("/status", slow)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            sim = Simulator("AC" + "0" * 32, "token", Behaviour(), seed=1)
            try:
                return await sim._send(f"http://127.0.0.1:{port}/status", "POST", {"n": "1"})
            finally:
                if sim._http is not None:
                    await sim._http.close()
                await runner.cleanup()

        record = asyncio.run(scenario())
        assert (record["status_code"], record["error"]) == (204, None)
