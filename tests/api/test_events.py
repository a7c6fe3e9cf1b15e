"""GET /api/events and /api/events/{id}: the account's events, newest first, filtered and paged
by a cursor; never another account's."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from shared import events
from shared.db import session_scope
from shared.models import new_id, utcnow
from tests import factories
from tests.api.conftest import KeyedClient


def append(account_id: str, event_type: str, subject_id: str, **data: object) -> str:
    subject_type = event_type.split(".")[0]
    with session_scope() as session:
        return events.append(session, account_id, event_type, subject_type, subject_id, data).id


@pytest.fixture
def api(client: TestClient) -> KeyedClient:
    """An account of no credits, so none of its events but the test's own are there."""
    account_id, key = factories.account()
    return KeyedClient(client, account_id, key)


class TestListEvents:
    def test_newest_first_with_each_events_fields(self, api: KeyedClient) -> None:
        call_id = new_id()
        first = append(api.account_id, "call.queued", call_id, status="queued")
        second = append(api.account_id, "call.dialing", call_id, status="dialing")
        response = api.get("/api/events")
        assert response.status_code == 200, response.text
        body = response.json()
        assert [item["id"] for item in body["items"]] == [second, first]
        assert body["nextCursor"] is None
        newest = body["items"][0]
        assert newest["type"] == "call.dialing"
        assert newest["subjectType"] == "call" and newest["subjectId"] == call_id
        assert newest["sequence"] == 2
        assert newest["data"] == {"status": "dialing"}
        assert api.get(f"/api/events/{first}").json()["data"] == {"status": "queued"}

    def test_a_cursor_pages_back_through_every_event_once(self, api: KeyedClient) -> None:
        ids = [append(api.account_id, "sms.queued", new_id()) for _ in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/events", **params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]

    def test_types_with_wildcards_subject_and_since_filter(self, api: KeyedClient) -> None:
        call_id, sms_id, batch_id = new_id(), new_id(), new_id()
        call_event = append(api.account_id, "call.no_answer", call_id)
        sms_event = append(api.account_id, "sms.delivered", sms_id)
        batch_event = append(api.account_id, "batch.paused", batch_id)

        def listed(**params: object) -> list[str]:
            response = api.get("/api/events", **params)
            assert response.status_code == 200, response.text
            return [item["id"] for item in response.json()["items"]]

        assert listed(type="call.*") == [call_event]
        assert listed(type="call.no_answer") == [call_event]
        assert listed(type="call.*,batch.*") == [batch_event, call_event]
        assert set(listed(type=["sms.delivered", "batch.paused"])) == {sms_event, batch_event}
        assert listed(type="*") == [batch_event, sms_event, call_event]
        assert listed(subject=sms_id) == [sms_event]
        later = (utcnow() + timedelta(seconds=60)).isoformat()
        assert listed(since=later) == []
        earlier = (utcnow() - timedelta(seconds=60)).isoformat()
        assert listed(since=earlier, subject=batch_id) == [batch_event]

    def test_an_unknown_type_or_a_time_without_offset_is_422(self, api: KeyedClient) -> None:
        response = api.get("/api/events", type="call.finished")
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "type"] and "call.completed" in error["msg"]
        response = api.get("/api/events", since="2026-01-01T12:00:00")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "since"]

    @pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
    def test_a_time_beyond_the_calendar_in_utc_is_422(self, api: KeyedClient, since: str) -> None:
        # A valid time with its offset whose UTC falls before year 1 or after 9999: a 500.
        response = api.get("/api/events", since=since)
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "since"] and "UTC" in error["msg"]

    @pytest.mark.parametrize("pattern", ["call.?ueued", "call.[q]ueued", "call.[!q]*", "*.?*"])
    def test_only_star_is_a_wildcard(self, api: KeyedClient, pattern: str) -> None:
        # Answered an empty page, while an endpoint subscribed to it was delivered the events.
        append(api.account_id, "call.queued", new_id(), status="queued")
        response = api.get("/api/events", type=pattern)
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "type"] and repr(pattern) in error["msg"]

    def test_another_accounts_events_are_never_shown(self, api: KeyedClient) -> None:
        other, _ = factories.account()
        theirs = append(other, "credits.changed", other, balance=5)
        mine = append(api.account_id, "credits.changed", api.account_id, balance=7)
        assert [item["id"] for item in api.get("/api/events").json()["items"]] == [mine]
        assert api.get(f"/api/events/{theirs}").status_code == 404
        assert api.get(f"/api/events/{new_id()}").status_code == 404

    def test_without_a_key_is_401(self, api: KeyedClient) -> None:
        assert api.client.get("/api/events").status_code == 401
