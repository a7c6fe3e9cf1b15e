"""The API with its Redis down, as `toingg api` runs it: Twilio's requests into it need nothing
from Redis. A call's TwiML is served, and every status callback is applied (stored in the
database) and answered 204, so none is acknowledged and lost while the broker is away."""

import os
from collections.abc import Iterator

import httpx
import pytest
from twilio.request_validator import RequestValidator

from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.embedded_redis import free_port
from shared.models import Account, Call, Campaign, SmsMessage, utcnow
from shared.sms import service as sms_service
from tests import factories
from tests.stack import ServerProcess


@pytest.fixture(scope="module")
def api_without_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    closed = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        f"{url}/api/health",
        tmp_path_factory.mktemp("api") / "api.log",
        env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{closed}/0", "PUBLIC_BASE_URL": url},
    )
    server.start()
    yield url
    server.stop()


def placed_call(account_id: str) -> tuple[str, str]:
    """A call a worker placed: (id, SID)."""
    campaign_id = factories.campaign(account_id)
    with session_scope() as session:
        account, campaign = session.get(Account, account_id), session.get(Campaign, campaign_id)
        assert account is not None and campaign is not None
        call_id = calls_service.place_call(
            session, account, campaign, "Ada", factories.phone_number()
        ).id
    with session_scope() as session:
        plan = calls_service.take(session, call_id, None)
        assert plan is not None
    sid = "CA" + call_id.replace("-", "")
    with session_scope() as session:
        calls_service.record_sid(session, plan, sid, utcnow())
    return call_id, sid


def sent_sms(account_id: str) -> tuple[str, str]:
    """An SMS Twilio has accepted: (id, SID)."""
    with session_scope() as session:
        account = session.get(Account, account_id)
        assert account is not None
        sms_id = sms_service.accept(session, account, "Ada", factories.phone_number(), "Hi").id
    with session_scope() as session:
        plan = sms_service.take(session, sms_id, None)
        assert plan is not None
    sid = "SM" + sms_id.replace("-", "")
    with session_scope() as session:
        sms_service.record_sent(session, plan, sid, 1)
    return sms_id, sid


def signed_post(base_url: str, path: str, params: dict[str, str]) -> httpx.Response:
    url = base_url + path
    signature = RequestValidator(get_settings().TWILIO_AUTH_TOKEN).compute_signature(url, params)
    return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


class TestRedisDown:
    def test_a_call_s_twiml_is_served_and_its_callbacks_applied(
        self, api_without_redis: str
    ) -> None:
        account_id, _ = factories.account(credits=10)
        call_id, sid = placed_call(account_id)
        path = f"/api/twilio/call-status?callId={call_id}"
        for sequence, status in enumerate(["ringing", "in-progress"], start=1):
            params = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence)}
            assert signed_post(api_without_redis, path, params).status_code == 204
        twiml = signed_post(api_without_redis, f"/api/twilio/voice/{call_id}", {"CallSid": sid})
        assert twiml.status_code == 200 and "<Say" in twiml.text
        final = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3"}
        response = signed_post(api_without_redis, path, {**final, "CallDuration": "61"})
        assert response.status_code == 204, response.text
        with session_scope() as session:
            call = session.get(Call, call_id)
            assert call is not None
            assert (call.status, call.duration_seconds) == ("completed", 61)

    def test_an_sms_s_callbacks_are_applied(self, api_without_redis: str) -> None:
        account_id, _ = factories.account(credits=10)
        sms_id, sid = sent_sms(account_id)
        path = f"/api/twilio/sms-status?smsId={sms_id}"
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "MessageStatus": status}
            assert signed_post(api_without_redis, path, params).status_code == 204
        with session_scope() as session:
            sms = session.get(SmsMessage, sms_id)
            assert sms is not None and sms.status == "delivered"
