"""Every request the workers send to Twilio, checked by Prism against Twilio's own OpenAPI
description (tests/specs/twilio_api_v2010.json). Prism answers 422 to a request that breaks
the description, which the client raises as TwilioRejected: these tests fail on any such request.

Prism answers with the description's example objects (the same SID every time), so the tests
assert on acceptance, not on data.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.calls import service as calls_service
from shared.config import get_settings
from shared.embedded_redis import free_port
from shared.sms import service as sms_service
from shared.telephony import client as twilio

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "tests" / "specs" / "twilio_api_v2010.json"


def _prism_command() -> list[str] | None:
    local = REPO / "node_modules" / ".bin" / "prism"
    if local.exists():
        return [str(local)]
    found = os.environ.get("PRISM_BIN") or shutil.which("prism")
    return [found] if found else None


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    command = _prism_command()
    if command is None:
        reason = "Prism is not installed (npm install --no-save @stoplight/prism-cli@5)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the contract test must run in CI: {reason}")
        pytest.skip(reason)
    port = free_port()
    process = subprocess.Popen(
        [*command, "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/2010-04-01/Accounts/AC{'0' * 32}/Calls/CA{'0' * 32}.json", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("Prism did not start within 90 s")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def via_prism(prism: str) -> Iterator[None]:
    client = twilio.get_client()
    original = client.api.base_url
    client.api.base_url = prism
    yield
    client.api.base_url = original


CALL_ID = "2b1c9f64-6a55-4c4f-9d8e-2f0f4d1c1e11"


class TestCallRequests:
    def test_call_creation_as_the_dial_task_sends_it(self, via_prism: None) -> None:
        settings = get_settings()
        remote = twilio.create_call(
            to="+14155552671",
            from_=settings.TWILIO_FROM_NUMBER,
            url=calls_service.voice_url(CALL_ID),
            status_callback=calls_service.status_callback_url(CALL_ID),
            timeout=settings.CALL_RING_TIMEOUT_SECONDS,
            time_limit=300,
        )
        assert remote.sid.startswith("CA")

    def test_hang_up_while_queued_or_ringing(self, via_prism: None) -> None:
        twilio.fetch_call("CA" + "1" * 32)
        twilio.update_call_status("CA" + "1" * 32, "canceled")

    def test_hang_up_while_in_progress(self, via_prism: None) -> None:
        twilio.update_call_status("CA" + "1" * 32, "completed")

    def test_reconcile_lookup(self, via_prism: None) -> None:
        since = datetime.now(UTC) - timedelta(minutes=1)
        twilio.find_calls(to="+14155552671", from_="+15005550006", created_since=since)

    def test_a_request_that_breaks_the_description_is_caught(self, via_prism: None) -> None:
        with pytest.raises(twilio.TwilioRejected):
            twilio.update_call_status("CA" + "1" * 32, "hung-up")


class TestMessageRequests:
    def test_sms_as_the_send_task_sends_it(self, via_prism: None) -> None:
        message = twilio.send_sms(
            to="+14155552671",
            from_=get_settings().TWILIO_FROM_NUMBER,
            body="Hello from Toingg",
            status_callback=sms_service.status_callback_url(CALL_ID),
        )
        assert message.sid.startswith(("SM", "MM"))

    def test_sms_reconcile_lookup(self, via_prism: None) -> None:
        since = datetime.now(UTC) - timedelta(minutes=1)
        twilio.find_messages(to="+14155552671", from_="+15005550006", created_since=since)
