"""SMS are handed out from the database as calls are: a backlog waits in the database, each
message is sent once with about one task for it, at the rate at the carrier; a claim whose task
was lost is sent after the stale time; and a task for a message already sent takes no rate
slot another message could use."""

import os
import time
import uuid
from collections import Counter

from shared.config import get_settings
from shared.db import session_scope
from shared.models import SmsMessage, utcnow
from shared.queue import get_celery
from shared.redis_client import get_redis
from shared.sms import jobs
from shared.sms import repository as sms_repository
from tests import factories
from tests.e2e.test_pacing import busiest_second
from tests.stack import Api, Carrier, StackProcesses, TaskEvents, wait_until

RATE, STALE = 5, 3
STACK_ENV = {"SMS_RATE_PER_SECOND": str(RATE), "DISPATCH_STALE_SECONDS": str(STALE)}


def customer(api_server: str) -> Api:
    account_id, key = factories.account(credits=10_000)
    return Api(api_server, key, account_id)


def send_sms(api: Api, number: str) -> str:
    response = api.post(
        "/api/send_sms", json={"name": "Ada", "phoneNumber": number, "message": "Your code"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["smsId"])


def sid_of(api: Api, sms_id: str) -> str | None:
    return api.get(f"/api/sms/{sms_id}").json()["messageSid"]  # type: ignore[no-any-return]


def at_carrier(carrier: Carrier, numbers: list[str]) -> list[dict]:  # type: ignore[type-arg]
    wanted = set(numbers)
    return [m for m in carrier.messages() if m["to"] in wanted]


def backlog(api: Api, carrier: Carrier, count: int) -> tuple[list[str], list[str]]:
    """`count` messages accepted at once, many more than a second's rate, and all sent:
    their ids and numbers."""
    numbers = [factories.phone_number() for _ in range(count)]
    sms_ids = [send_sms(api, number) for number in numbers]
    wait_until(
        lambda: len(at_carrier(carrier, numbers)) >= count,
        count / RATE + 60,  # no time bound is promised; a loaded machine is slow
        interval=0.5,
        message=f"{count} messages at the carrier",
    )
    return sms_ids, numbers


class TestABacklog:
    def test_every_message_is_sent_once_with_about_one_task_each(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        with TaskEvents(os.environ["REDIS_URL"]) as events:
            sms_ids, numbers = backlog(api, carrier, 60)
            # Long enough for a task still to come to show: a resend comes after STALE seconds.
            time.sleep(STALE + 2)
            tasks = [e for e in events.sent(jobs.SEND) if _sms_of(e) in set(sms_ids)]
        sent = Counter(m["to"] for m in at_carrier(carrier, numbers))
        print(f"{len(sms_ids)} messages, {sum(sent.values())} sent, {len(tasks)} send tasks")
        assert set(sent) == set(numbers)
        assert max(sent.values()) == 1
        # The broker carried what could be sent, not the backlog again and again.
        assert len(tasks) <= len(sms_ids) + 5, Counter(_sms_of(e) for e in tasks).most_common(5)

    def test_the_carrier_sees_the_rate(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        _, numbers = backlog(api, carrier, 50)
        times = sorted(m["created_at"] for m in at_carrier(carrier, numbers))
        average = (len(times) - 1) / (times[-1] - times[0])
        print(f"{average:.2f}/s on average, {busiest_second(times)} in the busiest second")
        assert average <= 1.05 * RATE
        # Evenly spaced slots: a request late on its slot may share a second with the next.
        assert busiest_second(times) <= RATE + 1


class TestALostTask:
    def test_a_claim_whose_task_was_lost_is_sent_once_after_the_stale_time(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        with session_scope() as session:
            sms = SmsMessage(
                account_id=api.account_id,
                to_number=number,
                from_number=get_settings().TWILIO_FROM_NUMBER,
                body="Your code is 1234",
                status="queued",
            )
            session.add(sms)
            session.flush()
            sms_id = sms.id
            # Claimed as the dispatcher claims it, and its task never sent.
            assert sms_repository.claim(session, [sms_id], str(uuid.uuid4())) == [sms_id]
        claimed_at = utcnow()
        wait_until(
            lambda: sid_of(api, sms_id) is not None,
            STALE + 30,
            message="sent",
        )
        assert (utcnow() - claimed_at).total_seconds() >= STALE - 0.5
        time.sleep(STALE + 1)
        [message] = at_carrier(carrier, [number])
        assert sid_of(api, sms_id) == message["sid"]


def _sms_of(event: dict) -> str:  # type: ignore[type-arg]
    # The event shows the task's arguments as their repr: ('<id>', '<attempt>').
    return str(event["args"]).split("'")[1]


class TestATaskForAMessageSentAlready:
    def test_takes_no_rate_slot(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        sms_id = send_sms(api, number)
        wait_until(
            lambda: sid_of(api, sms_id) is not None,
            30,
            message="sent",
        )
        with session_scope() as session:
            sms = session.get(SmsMessage, sms_id)
            assert sms is not None and sms.attempt is not None
            attempt = sms.attempt
        bucket = f"toingg:rate:sms:{get_settings().TWILIO_ACCOUNT_SID}"
        before = get_redis().get(bucket)
        with TaskEvents(os.environ["REDIS_URL"]) as events:
            # As a broker may deliver a message again, or someone may send one through Flower:
            # with a claim's attempt, and without one.
            duplicates = [
                get_celery().send_task(jobs.SEND, args=[sms_id, attempt]).id,
                get_celery().send_task(jobs.SEND, args=[sms_id]).id,
            ]
            wait_until(
                lambda: all(events.ended(task_id) for task_id in duplicates),
                30,
                message="both tasks ran",
            )
            ended = [events.ended(task_id) or {} for task_id in duplicates]
        after = get_redis().get(bucket)
        assert after is None or after == before, "a slot was taken for a message sent already"
        assert all("not taken" in str(e.get("result")) for e in ended), ended
        assert len(at_carrier(carrier, [number])) == 1
