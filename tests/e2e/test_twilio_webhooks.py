"""Twilio's requests into the API, signed as Twilio signs them: the TwiML for a call and the
status callbacks that move it. No worker here: the callbacks alone drive the call."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from twilio.request_validator import RequestValidator

from shared.config import get_settings
from tests import factories
from tests.stack import Api

SID = "CA" + "ab" * 16


def signed_post(path: str, params: dict[str, str], signature: str | None = None) -> httpx.Response:
    settings = get_settings()
    url = settings.PUBLIC_BASE_URL + path
    if signature is None:
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)
    return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature})


def lifecycle(sid: str, start: datetime) -> list[dict[str, str]]:
    steps = [("initiated", 0), ("ringing", 1), ("in-progress", 3), ("completed", 64)]
    events = []
    for sequence, (status, offset) in enumerate(steps):
        params = {
            "CallSid": sid,
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(start + timedelta(seconds=offset)),
            "AccountSid": get_settings().TWILIO_ACCOUNT_SID,
        }
        if status == "completed":
            params["CallDuration"] = "61"
        events.append(params)
    return events


def queued_call(api: Api) -> str:
    response = api.post(
        "/api/make_toingg/",
        json={"campaign": "welcome", "name": "Ada", "phoneNumber": factories.phone_number()},
    )
    return response.json()["callId"]


def state(api: Api, call_id: str) -> dict:  # type: ignore[type-arg]
    call = api.get(f"/api/calls/{call_id}").json()
    return {
        k: call[k]
        for k in ("status", "callSid", "durationSeconds", "answeredAt", "endedAt", "timeline")
    }


@pytest.fixture
def call_id(api: Api) -> str:
    return queued_call(api)


class TestStatusCallbacks:
    def test_in_order_the_call_shows_its_whole_path(self, api: Api, call_id: str) -> None:
        start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        sid = "CA" + call_id.replace("-", "")
        for params in lifecycle(sid, start):
            assert (
                signed_post(f"/api/twilio/call-status?callId={call_id}", params).status_code == 204
            )
        call = api.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "completed"
        assert call["callSid"] == sid
        assert call["durationSeconds"] == 61
        assert [s["status"] for s in call["timeline"]] == [
            "queued",
            "initiated",
            "ringing",
            "in-progress",
            "completed",
        ]
        assert call["answeredAt"].startswith("2026-11-23T10:00:03")
        assert call["endedAt"].startswith("2026-11-23T10:01:04")

    def test_replayed_twice_and_shuffled_ends_in_the_same_state(self, api: Api) -> None:
        start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        in_order, shuffled = queued_call(api), queued_call(api)
        for params in lifecycle("CA" + in_order.replace("-", ""), start):
            signed_post(f"/api/twilio/call-status?callId={in_order}", params)
        events = lifecycle("CA" + shuffled.replace("-", ""), start) * 2
        random.Random(7).shuffle(events)
        for params in events:
            assert (
                signed_post(f"/api/twilio/call-status?callId={shuffled}", params).status_code == 204
            )
        expected, got = state(api, in_order), state(api, shuffled)
        expected.pop("callSid"), got.pop("callSid")
        for steps in (expected["timeline"], got["timeline"]):
            steps.pop(0)  # "queued" carries each call's own creation time
        assert got == expected

    def test_a_late_ringing_never_overwrites_completed(self, api: Api, call_id: str) -> None:
        events = lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC))
        signed_post(f"/api/twilio/call-status?callId={call_id}", events[3])
        signed_post(f"/api/twilio/call-status?callId={call_id}", events[1])
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "completed"

    def test_a_callback_naming_another_calls_sid_is_204_and_changes_neither(self, api: Api) -> None:
        start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        first, second = queued_call(api), queued_call(api)
        sid = "CA" + first.replace("-", "")
        initiated, ringing, *_ = lifecycle(sid, start)
        signed_post(f"/api/twilio/call-status?callId={first}", initiated)
        # A callback for the second call names the first one's SID (its call at Twilio was
        # adopted by the wrong call): not this call's news, and no reason to fail, or Twilio
        # would count the application's errors.
        answer = signed_post(f"/api/twilio/call-status?callId={second}", ringing)
        assert answer.status_code == 204, answer.text
        assert (state(api, first)["status"], state(api, first)["callSid"]) == ("initiated", sid)
        assert (state(api, second)["status"], state(api, second)["callSid"]) == ("queued", None)

    def test_wrong_or_missing_signature_is_403_and_changes_nothing(
        self, api: Api, call_id: str
    ) -> None:
        [_, ringing, *_] = lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC))
        path = f"/api/twilio/call-status?callId={call_id}"
        assert signed_post(path, ringing, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
        url = get_settings().PUBLIC_BASE_URL + path
        assert httpx.post(url, data=ringing).status_code == 403
        tampered = {**ringing, "CallStatus": "completed"}
        good = RequestValidator(get_settings().TWILIO_AUTH_TOKEN).compute_signature(url, ringing)
        assert signed_post(path, tampered, signature=good).status_code == 403
        call = api.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "queued"
        assert call["callSid"] is None
        assert [s["status"] for s in call["timeline"]] == ["queued"]

    def test_signature_for_another_call_does_not_apply_here(self, api: Api, call_id: str) -> None:
        other = queued_call(api)
        [initiated, *_] = lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC))
        settings = get_settings()
        url = f"{settings.PUBLIC_BASE_URL}/api/twilio/call-status?callId={other}"
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, initiated)
        path = f"/api/twilio/call-status?callId={call_id}"
        assert signed_post(path, initiated, signature=signature).status_code == 403


class TestVoiceTwiml:
    def test_says_the_campaign_script_with_the_name(self, api: Api, call_id: str) -> None:
        response = signed_post(f"/api/twilio/voice/{call_id}", {"CallSid": SID})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        assert "<Say>Hello Ada, this is Toingg.</Say>" in response.text

    def test_connects_a_media_stream_when_configured(
        self, api: Api, call_id: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "MEDIA_STREAM_URL", "wss://agent.example/stream")
        response = signed_post(f"/api/twilio/voice/{call_id}", {"CallSid": SID})
        assert '<Connect><Stream url="wss://agent.example/stream">' in response.text
        assert f'<Parameter name="callId" value="{call_id}" />' in response.text

    def test_a_call_hung_up_before_it_is_answered_hears_nothing(
        self, api: Api, call_id: str
    ) -> None:
        assert api.post("/api/hang_up_call", callSid=call_id).status_code == 200
        response = signed_post(f"/api/twilio/voice/{call_id}", {"CallSid": SID})
        assert response.status_code == 200
        assert "<Say>" not in response.text
        assert "<Hangup />" in response.text

    def test_unsigned_request_is_403(self, api: Api, call_id: str) -> None:
        url = f"{get_settings().PUBLIC_BASE_URL}/api/twilio/voice/{call_id}"
        assert httpx.post(url, data={"CallSid": SID}).status_code == 403
