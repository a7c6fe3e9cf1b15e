"""Calls wait for their hours, as the API and the dispatcher show them, with a clock the test
sets: nothing is claimed or dialed outside a number's local hours, and each call goes out as
its hours open."""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from sqlalchemy import select, update

from shared.calling_hours import clock
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.events import types
from shared.models import Call, Event, utcnow
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def lawful(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The law's rules and the default hours on, and a clock the test moves; the calls other
    tests left waiting are canceled, so the dispatcher serves only these."""
    with session_scope() as session:
        session.execute(
            update(Call)
            .where(Call.status.in_(("queued", "dialing", "scheduled")), Call.twilio_sid.is_(None))
            .values(status="canceled")
        )
    monkeypatch.setattr(get_settings(), "CALLING_RULES", True)
    monkeypatch.setattr(get_settings(), "CALLING_HOURS", "08:00-21:00")
    monkeypatch.setattr(get_settings(), "DISPATCH_WINDOW", 2000)
    # 2026-06-15 11:30 UTC: 07:30 in New York, 04:30 in Los Angeles.
    fake = Clock(datetime(2026, 6, 15, 11, 30, tzinfo=UTC))
    monkeypatch.setattr(clock, "now", fake)
    yield fake


def _tick() -> int:
    from workers.tasks import calls as call_tasks

    return call_tasks.dispatch()


def _numbers(area_code: str, count: int, start: int) -> list[str]:
    found = []
    n = start
    while len(found) < count:
        number = f"+1{area_code}{n:07d}"
        n += 1
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            found.append(number)
    return found


ZONES = {
    "212": "America/New_York",
    "312": "America/Chicago",
    "303": "America/Denver",
    "213": "America/Los_Angeles",
}


def _claimed_now(account_id: str) -> list[str]:
    """The calls the tick claimed go to Twilio as a worker would send them (freeing the window);
    returns their numbers."""
    with session_scope() as session:
        return list(
            session.scalars(
                update(Call)
                .where(Call.account_id == account_id, Call.status == "dialing")
                .values(status="initiated", twilio_sid="CA" + Call.id)
                .returning(Call.to_number)
            )
        )


def _local_minutes(number: str, at: datetime) -> int:
    local = at.astimezone(ZoneInfo(ZONES[number[2:5]]))
    return local.hour * 60 + local.minute


class TestABatchAcrossZones:
    def test_no_call_is_claimed_outside_its_hours_and_each_zone_goes_as_it_opens(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        account_id, key = factories.account(credits=10_000)
        factories.campaign(account_id, name="welcome")
        customer = KeyedClient(api.client, account_id, key)
        numbers = [n for code in ZONES for n in _numbers(code, 250, 5_550_000)]
        rows = [{"clientNumber": number} for number in numbers]
        accepted = customer.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["accepted"] == 1000
        batch_id = accepted.json()["batchId"]

        shown = customer.get(f"/api/batches/{batch_id}").json()
        assert shown["waitingForHours"] == 1000
        assert shown["counts"] == {"scheduled": 1000}
        assert shown["nextHoursOpenAt"] == "2026-06-15T12:00:00Z"

        placed: Counter[str] = Counter()
        end = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
        while lawful.now <= end:
            _tick()
            for number in _claimed_now(account_id):
                # Every call claimed is within 08:00-21:00 where it rings.
                assert 8 * 60 <= _local_minutes(number, lawful.now) < 21 * 60, (
                    number,
                    lawful.now,
                )
                placed[ZONES[number[2:5]]] += 1
            opened = {
                "America/New_York": 12,
                "America/Chicago": 13,
                "America/Denver": 14,
                "America/Los_Angeles": 15,
            }
            # Each zone all at once when its hours open, none before.
            for zone, hour in opened.items():
                expected = 250 if lawful.now.hour >= hour else 0
                assert placed[zone] == expected, (zone, lawful.now, placed)
            lawful.now += timedelta(minutes=15)
        shown = customer.get(f"/api/batches/{batch_id}").json()
        assert shown["waitingForHours"] == 0
        assert shown["nextHoursOpenAt"] is None

    def test_a_scheduled_call_shows_when_and_why_and_its_event_says_so(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        placed = api.post(
            "/api/make_toingg",
            json={"campaign": "welcome", "name": "x", "phoneNumber": "+13055551234"},
        )
        assert placed.status_code == 200, placed.text
        assert placed.json()["status"] == "scheduled"
        call = api.get(f"/api/calls/{placed.json()['callId']}").json()
        assert call["status"] == "scheduled"
        assert call["notBefore"] == "2026-06-15T12:00:00Z"
        assert call["hold"]["rule"] == "us-tcpa"
        assert "07:30 mon in America/New_York" in call["hold"]["reason"]
        with session_scope() as session:
            event = session.scalars(
                select(Event).where(Event.subject_id == call["id"]).order_by(Event.created_at)
            ).first()
            assert event is not None
            assert event.type == "call.scheduled"
            assert event.data["hold"] == call["hold"]
            assert event.data["notBefore"] == call["notBefore"]

    def test_florida_at_half_past_eight_waits_for_the_morning(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 16, 0, 30, tzinfo=UTC)  # 20:30 EDT
        miami = api.post(
            "/api/make_toingg",
            json={"campaign": "welcome", "phoneNumber": "+13055551234"},
        ).json()
        new_york = api.post(
            "/api/make_toingg",
            json={"campaign": "welcome", "phoneNumber": factories.phone_number()},
        ).json()
        assert new_york["status"] == "queued"  # a 415 number: 17:30 in San Francisco
        call = api.get(f"/api/calls/{miami['callId']}").json()
        assert (call["status"], call["hold"]["rule"]) == ("scheduled", "us-fl")
        assert call["notBefore"] == "2026-06-16T12:00:00Z"

    def test_a_zone_given_with_a_call_does_not_ring_its_number_at_dawn(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)  # 08:30 EDT, 05:30 PDT
        placed = api.post(
            "/api/make_toingg",
            json={
                "campaign": "welcome",
                "phoneNumber": "+14155552671",
                "timezone": "America/New_York",
            },
        )
        assert placed.status_code == 200, placed.text
        call = api.get(f"/api/calls/{placed.json()['callId']}").json()
        assert (call["status"], call["notBefore"]) == ("scheduled", "2026-06-15T15:00:00Z")
        assert "America/Los_Angeles" in call["hold"]["reason"]

    def test_a_call_queued_as_its_hours_open_is_explained_so(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        placed = api.post(
            "/api/make_toingg", json={"campaign": "welcome", "phoneNumber": "+13055551234"}
        ).json()
        lawful.now = datetime(2026, 6, 15, 12, 0, 1, tzinfo=UTC)  # 08:00:01 in Miami
        _tick()
        explained = api.get(f"/api/compliance/calls/{placed['callId']}").json()
        steps = [(step["event"], step["why"]) for step in explained["steps"]]
        assert [event for event, _ in steps] == ["call.scheduled", "call.queued", "call.dialing"]
        assert steps[1][1] == ("queued as the wait ended: 2026-06-15T12:00:00Z came (rule us-tcpa)")


class TestTheLastLook:
    def test_a_claim_whose_hours_closed_before_the_dial_never_rings_and_waits_again(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 16, 0, 59, 30, tzinfo=UTC)  # 20:59:30 EDT
        number = _numbers("212", 1, 5_551_000)[0]
        placed = api.post(
            "/api/make_toingg", json={"campaign": "welcome", "phoneNumber": number}
        ).json()
        assert placed["status"] == "queued"
        with session_scope() as session:
            [plan] = calls_service.claim(session, api.account_id, [placed["callId"]])
        with session_scope() as session:
            taken = calls_service.take(session, plan.call_id, plan.attempt)
        assert taken is not None
        balance = api.get("/api/credits").json()["balance"]
        lawful.now = datetime(2026, 6, 16, 1, 0, 5, tzinfo=UTC)  # the worker waited: 21:00:05
        with session_scope() as session:
            assert calls_service.fence(session, taken) is None
            assert calls_service.fenced_off(session, taken) is calls_service.Again.NO
        call = api.get(f"/api/calls/{placed['callId']}").json()
        assert call["status"] == "scheduled"
        assert call["callSid"] is None
        assert call["notBefore"] == "2026-06-16T12:00:00Z"
        # Its reservation was given back.
        assert api.get("/api/credits").json()["balance"] == balance + 5

    def test_a_dial_whose_request_may_reach_twilio_after_the_close_waits(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        # The create request may take TWILIO_TIMEOUT_SECONDS to reach Twilio: sent at 20:59:55
        # it could ring at 21:00:05.
        lawful.now = datetime(2026, 6, 16, 0, 59, 50, tzinfo=UTC)  # 20:59:50 EDT
        number = _numbers("212", 1, 5_552_000)[0]
        placed = api.post(
            "/api/make_toingg", json={"campaign": "welcome", "phoneNumber": number}
        ).json()
        assert placed["status"] == "queued"
        with session_scope() as session:
            [plan] = calls_service.claim(session, api.account_id, [placed["callId"]])
        with session_scope() as session:
            taken = calls_service.take(session, plan.call_id, plan.attempt)
        assert taken is not None
        lawful.now = datetime(2026, 6, 16, 0, 59, 55, tzinfo=UTC)
        with session_scope() as session:
            assert calls_service.fence(session, taken) is None
        call = api.get(f"/api/calls/{placed['callId']}").json()
        assert (call["status"], call["callSid"]) == ("scheduled", None)
        assert call["notBefore"] == "2026-06-16T12:00:00Z"


class TestScheduling:
    def test_start_at_waits_and_cancel_before_the_start_works(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
        placed = api.post(
            "/api/make_toingg",
            json={
                "campaign": "welcome",
                "phoneNumber": factories.phone_number(),
                "startAt": "2026-06-15T10:00:00-07:00",
            },
        ).json()
        call = api.get(f"/api/calls/{placed['callId']}").json()
        assert call["status"] == "scheduled"
        assert call["notBefore"] == "2026-06-15T17:00:00Z"
        assert call["hold"]["rule"] == "startAt"
        _tick()
        assert api.get(f"/api/calls/{placed['callId']}").json()["status"] == "scheduled"
        hung = api.post("/api/hang_up_call", callSid=placed["callId"])
        assert hung.status_code == 200, hung.text
        assert hung.json()["status"] == "canceled"

    def test_a_batch_canceled_before_its_start_cancels_its_scheduled_calls(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
        rows = [{"clientNumber": factories.phone_number()} for _ in range(3)]
        batch = api.post(
            "/api/make_batch_toingg",
            json={"campaign": "welcome", "numberList": rows, "startAt": "2026-06-16T09:00:00Z"},
        ).json()
        assert api.get(f"/api/batches/{batch['batchId']}").json()["nextHoursOpenAt"] == (
            "2026-06-16T15:00:00Z"  # 08:00 in San Francisco, after 09:00 UTC
        )
        canceled = api.post(f"/api/batches/{batch['batchId']}/cancel")
        assert canceled.json()["canceledCalls"] == 3
        assert api.get(f"/api/batches/{batch['batchId']}").json()["counts"] == {"canceled": 3}

    def test_a_call_not_placed_by_not_after_expires_uncharged(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        lawful.now = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 21:00 in San Francisco
        balance = api.get("/api/credits").json()["balance"]
        placed = api.post(
            "/api/make_toingg",
            json={
                "campaign": "welcome",
                "phoneNumber": factories.phone_number(),
                "notAfter": "2026-06-15T06:00:00Z",
            },
        ).json()
        call = api.get(f"/api/calls/{placed['callId']}").json()
        assert (call["status"], call["notBefore"]) == ("scheduled", "2026-06-15T06:00:00Z")
        lawful.now = datetime(2026, 6, 15, 6, 0, 1, tzinfo=UTC)
        _tick()
        call = api.get(f"/api/calls/{placed['callId']}").json()
        assert call["status"] == "expired"
        assert call["hold"]["rule"] == "notAfter"
        assert call["callSid"] is None
        assert api.get("/api/credits").json()["balance"] == balance
        with session_scope() as session:
            kinds = list(
                session.scalars(
                    select(Event.type)
                    .where(Event.subject_id == call["id"])
                    .order_by(Event.created_at)
                )
            )
        assert kinds[-1] == types.for_status(types.CALL, "expired") == "call.expired"
        explained = api.get(f"/api/compliance/calls/{call['id']}").json()
        assert explained["placed"] is False
        assert explained["verdict"].startswith("never placed: expired")
        assert [step["event"] for step in explained["steps"]] == ["call.scheduled", "call.expired"]
        assert "rule us-tcpa" in explained["steps"][0]["why"]
        assert (
            explained["steps"][1]["why"] == "not placed: not placed by its notAfter (rule notAfter)"
        )


class TestBadInput:
    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"startAt": "2026-06-15T10:00:00"}, "startAt"),
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"timezone": "../../etc/passwd"}, "timezone"),
            ({"startAt": "9999-12-31T23:59:00-10:00"}, "startAt"),
            ({"startAt": "0001-01-01T00:00:00+14:00"}, "startAt"),
            ({"notAfter": "9999-12-31T23:59:00-10:00"}, "notAfter"),
            ({"startAt": "2026-06-15T10:00:00+25:00"}, "startAt"),
            ({"notAfter": "2026-06-15T10:00:00Z"}, "notAfter"),  # has passed
            (
                {"startAt": "2026-06-16T10:00:00Z", "notAfter": "2026-06-16T09:00:00Z"},
                "notAfter",
            ),
        ],
    )
    def test_a_call_with_bad_times_is_422_naming_the_field(
        self, api: KeyedClient, lawful: Clock, extra: dict[str, str], field: str
    ) -> None:
        lawful.now = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
        response = api.post(
            "/api/make_toingg",
            json={"campaign": "welcome", "phoneNumber": factories.phone_number(), **extra},
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][-1] == field

    @pytest.mark.parametrize(
        ("hours", "named"),
        [
            ({"start": "9am", "end": "20:00"}, "start"),
            ({"start": "09:00", "end": "08:00"}, "end"),
            ({"start": "09:00", "end": "20:00", "days": ["funday"]}, "days"),
        ],
    )
    def test_bad_calling_hours_are_422_naming_the_field(
        self, api: KeyedClient, hours: dict[str, object], named: str
    ) -> None:
        response = api.post(
            "/api/campaigns",
            json={"name": "hours", "script": "Hi {name}", "callingHours": hours},
        )
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"][-1] == "callingHours"
        assert error["msg"].startswith(f"{named}:")

    def test_a_campaigns_hours_and_zone_are_kept_and_shown(self, api: KeyedClient) -> None:
        made = api.post(
            "/api/campaigns",
            json={
                "name": "weekdays",
                "script": "Hi {name}",
                "callingHours": {"start": "09:00", "end": "20:00", "days": ["mon", "FRI"]},
                "defaultTimezone": "America/Chicago",
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["callingHours"] == {
            "start": "09:00",
            "end": "20:00",
            "days": ["mon", "fri"],
        }
        assert made.json()["defaultTimezone"] == "America/Chicago"
        bad = api.patch(f"/api/campaigns/{made.json()['id']}", {"defaultTimezone": "Nowhere"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"][-1] == "defaultTimezone"


class TestCaps:
    def test_a_fourth_call_to_a_number_waits_for_the_first_to_be_a_day_old(
        self, api: KeyedClient, lawful: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Hours open all day, so only the cap holds the call; the clock near the wall clock's,
        # as the calls' own times (when they were dialed) are.
        monkeypatch.setattr(get_settings(), "CALLING_RULES", False)
        monkeypatch.setattr(get_settings(), "CALLING_HOURS", "00:00-24:00")
        monkeypatch.setattr(get_settings(), "MAX_CALLS_PER_NUMBER_PER_DAY", 3)
        start = utcnow()
        lawful.now = start
        number = factories.phone_number()
        ids = [
            api.post(
                "/api/make_toingg", json={"campaign": "welcome", "phoneNumber": number}
            ).json()["callId"]
            for _ in range(4)
        ]
        _tick()
        with session_scope() as session:
            session.execute(
                update(Call)
                .where(Call.id.in_(ids), Call.status == "dialing")
                .values(status="initiated", twilio_sid="CA" + Call.id, dialed_at=start)
            )
        statuses = Counter(api.get(f"/api/calls/{i}").json()["status"] for i in ids)
        assert statuses == {"initiated": 3, "scheduled": 1}
        [waiting] = [
            call
            for call in (api.get(f"/api/calls/{i}").json() for i in ids)
            if call["status"] == "scheduled"
        ]
        assert waiting["hold"]["rule"] == "MAX_CALLS_PER_NUMBER_PER_DAY"
        assert waiting["hold"]["reason"] == "3 calls to this number in the last 24 hours"
        not_before = datetime.fromisoformat(waiting["notBefore"])
        assert not_before == start + timedelta(hours=24)

        lawful.now = start + timedelta(hours=23, minutes=59)
        _tick()
        assert api.get(f"/api/calls/{waiting['id']}").json()["status"] == "scheduled"
        lawful.now = not_before + timedelta(seconds=1)
        _tick()
        assert api.get(f"/api/calls/{waiting['id']}").json()["status"] == "dialing"

    def test_two_claims_at_once_do_not_both_take_a_numbers_last_call(
        self, api: KeyedClient, lawful: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "CALLING_RULES", False)
        monkeypatch.setattr(get_settings(), "CALLING_HOURS", "00:00-24:00")
        monkeypatch.setattr(get_settings(), "MAX_CALLS_PER_NUMBER_PER_DAY", 1)
        lawful.now = utcnow()
        number = factories.phone_number()
        first, second = (
            api.post(
                "/api/make_toingg", json={"campaign": "welcome", "phoneNumber": number}
            ).json()["callId"]
            for _ in range(2)
        )
        # The first claim holds the account's row, its call claimed and not committed; the second
        # claim, at the same moment, waits for it and then counts the first's call.
        with session_scope() as holder:
            assert len(calls_service.claim(holder, api.account_id, [first])) == 1
            racer = Racer(lambda session: calls_service.claim(session, api.account_id, [second]))
            racer.wait_until_blocked()
        assert racer.join() == []
        second_call = api.get(f"/api/calls/{second}").json()
        assert second_call["status"] == "scheduled"
        assert second_call["hold"]["rule"] == "MAX_CALLS_PER_NUMBER_PER_DAY"
        assert api.get(f"/api/calls/{first}").json()["status"] == "dialing"


class TestHoursChanged:
    def test_a_campaigns_new_hours_apply_to_its_calls_already_waiting(
        self, api: KeyedClient, lawful: Clock
    ) -> None:
        number = _numbers("212", 1, 5_552_000)[0]
        placed = api.post("/api/make_toingg", json={"campaign": "welcome", "phoneNumber": number})
        call_id = placed.json()["callId"]
        assert api.get(f"/api/calls/{call_id}").json()["notBefore"] == "2026-06-15T12:00:00Z"
        [campaign] = api.get("/api/campaigns").json()["items"]
        changed = api.patch(
            f"/api/campaigns/{campaign['id']}",
            {"callingHours": {"start": "10:00", "end": "18:00"}},
        )
        assert changed.status_code == 200, changed.text
        lawful.now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # 08:00 in New York
        _tick()
        call = api.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "scheduled"
        assert call["notBefore"] == "2026-06-15T14:00:00Z"  # 10:00 in New York
        assert call["hold"]["rule"] == "callingHours"
        lawful.now = datetime(2026, 6, 15, 14, 0, tzinfo=UTC)
        _tick()
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "dialing"
