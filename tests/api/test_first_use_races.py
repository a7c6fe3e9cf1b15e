"""The same name or number taken by two requests at once: one transaction is held open after its
insert, before its commit, while the other request runs into it. The second gets the answer a
request after the first would get (409, or 200 where the request creates or updates), never a
500."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.routes import calls as calls_routes
from shared import cli
from shared.caller_ids import service as caller_ids
from shared.calls.schemas import MakeCallRequest
from shared.campaigns import repository as campaigns_repository
from shared.campaigns import service as campaigns_service
from shared.campaigns.schemas import CampaignCreate
from shared.db import session_scope
from shared.models import Account
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import wait_until_any_waits


def while_held(first: Callable[[Session], object], second: Callable[[], object]) -> object:
    """`first(session)` done and held uncommitted while `second()` runs into it; then the first
    commits, and what `second` answers is returned."""
    with ThreadPoolExecutor(1) as pool:
        with session_scope() as held:
            first(held)
            running = pool.submit(second)
            wait_until_any_waits(lambda: not running.done())
        return running.result(timeout=30)


def customer(client: TestClient) -> KeyedClient:
    account_id, key = factories.account(credits=100)
    return KeyedClient(client, account_id, key)


class TestCampaignNames:
    def test_two_creates_of_one_name_answer_201_and_409(self, client: TestClient) -> None:
        api = customer(client)

        def create(session: Session) -> None:
            campaigns_service.create(
                session, api.account_id, CampaignCreate(name="launch", script="First")
            )

        response = while_held(
            create, lambda: api.post("/api/campaigns", json={"name": "launch", "script": "Second"})
        )
        assert isinstance(response, httpx.Response)
        assert response.status_code == 409, response.text
        assert response.json() == {"detail": "a campaign named 'launch' exists already"}
        [campaign] = api.get("/api/campaigns").json()["items"]
        assert campaign["script"] == "First"

    def test_a_rename_to_a_name_being_taken_is_409(self, client: TestClient) -> None:
        api = customer(client)
        other = api.post("/api/campaigns", json={"name": "spring", "script": "Hi"}).json()

        def create(session: Session) -> None:
            campaigns_service.create(
                session, api.account_id, CampaignCreate(name="summer", script="Hi")
            )

        response = while_held(
            create, lambda: api.patch(f"/api/campaigns/{other['id']}", json={"name": "summer"})
        )
        assert isinstance(response, httpx.Response)
        assert response.status_code == 409, response.text
        assert response.json() == {"detail": "a campaign named 'summer' exists already"}
        names = sorted(c["name"] for c in api.get("/api/campaigns").json()["items"])
        assert names == ["spring", "summer"]

    def test_two_make_toingg_details_of_a_new_campaign_both_call(self, client: TestClient) -> None:
        api = customer(client)

        def details(session: Session) -> None:
            campaigns_service.upsert_script(session, api.account_id, "fresh", "First {name}")

        body = {
            "campaignName": "fresh",
            "campaignScript": "Second {name}",
            "name": "Ada",
            "phoneNumber": "+14155552671",
        }
        response = while_held(details, lambda: api.post("/api/make_toingg_details", json=body))
        assert isinstance(response, httpx.Response)
        assert response.status_code == 200, response.text
        assert response.json()["campaign"] == "fresh"
        with session_scope() as session:
            campaign = campaigns_repository.get_by_name(session, api.account_id, "fresh")
            assert campaign is not None and campaign.script == "Second {name}"
        [call] = api.get("/api/calls").json()["items"]
        assert call["id"] == response.json()["callId"]


class TestCallerIds:
    def test_two_adds_of_one_number_succeed_once(self, capsys: pytest.CaptureFixture[str]) -> None:
        account_id, _ = factories.account()
        number = factories.phone_number()
        capsys.readouterr()

        code = while_held(
            lambda session: caller_ids.add(session, account_id, number),
            lambda: cli.main(["accounts", "caller-ids", "add", account_id, number]),
        )
        assert code == 1
        assert capsys.readouterr().out.strip() == f"{number} is already a caller ID of this account"
        with session_scope() as session:
            assert [row.number for row in caller_ids.of_account(session, account_id)] == [number]


class TestCampaignDeletes:
    def test_a_call_placed_while_its_campaign_is_deleted_is_404(self, client: TestClient) -> None:
        api = customer(client)
        factories.caller_id(api.account_id)
        campaign_id = factories.campaign(api.account_id, name="doomed")

        def delete(session: Session) -> None:
            campaigns_service.delete(
                session, campaigns_service.get(session, api.account_id, campaign_id)
            )

        call = {"campaign": "doomed", "name": "Ada", "phoneNumber": factories.phone_number()}
        response = while_held(delete, lambda: api.post("/api/make_toingg/", json=call))
        assert isinstance(response, httpx.Response)
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": "campaign 'doomed' not found"}
        assert api.get("/api/calls").json()["items"] == []

    def test_a_batch_accepted_while_its_campaign_is_deleted_is_404(
        self, client: TestClient
    ) -> None:
        api = customer(client)
        factories.caller_id(api.account_id)
        campaign_id = factories.campaign(api.account_id, name="doomed")

        def delete(session: Session) -> None:
            campaigns_service.delete(
                session, campaigns_service.get(session, api.account_id, campaign_id)
            )

        batch = {"campaign": "doomed", "numberList": [{"clientNumber": factories.phone_number()}]}
        response = while_held(delete, lambda: api.post("/api/make_batch_toingg", json=batch))
        assert isinstance(response, httpx.Response)
        assert response.status_code == 404, response.text

    def test_a_delete_while_a_call_is_being_placed_is_409(self, client: TestClient) -> None:
        api = customer(client)
        factories.caller_id(api.account_id)
        campaign_id = factories.campaign(api.account_id, name="busy")
        call = {"campaign": "busy", "name": "Ada", "phoneNumber": factories.phone_number()}

        def place(session: Session) -> None:  # what POST /api/make_toingg/ does, held
            account = session.get(Account, api.account_id)
            assert account is not None
            calls_routes._place(session, account, MakeCallRequest(**call))

        response = while_held(place, lambda: api.delete(f"/api/campaigns/{campaign_id}"))
        assert isinstance(response, httpx.Response)
        assert response.status_code == 409, response.text
        assert len(api.get("/api/calls").json()["items"]) == 1
