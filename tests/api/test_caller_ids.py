"""Caller IDs an account owns: a campaign, a call or an SMS from any other number is refused,
when it is saved, when it is accepted, and when it comes to be sent."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from shared import cli
from shared.calls import service as calls_service
from shared.config import Settings, get_settings
from shared.db import session_scope
from shared.sms import service as sms_service
from tests import factories
from tests.api.conftest import KeyedClient

PLATFORM = "+15005550006"


@pytest.fixture
def own_numbers_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The platform's number is not shared, as in production."""
    monkeypatch.setattr(get_settings(), "PLATFORM_FROM_NUMBER_SHARED", False)
    yield


@pytest.fixture
def customer(client: TestClient, own_numbers_only: None) -> KeyedClient:
    """An account with 100 credits and no number yet."""
    account_id, key = factories.account(credits=100)
    return KeyedClient(client, account_id, key)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str


@pytest.fixture
def toingg(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """The `toingg` command, run in the tests' process (a process of its own is much slower)."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = cli.main(list(args))
        return Ran(code, capsys.readouterr().out)

    return run


def detail(response) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return error["loc"], error["msg"]


class TestTheSetting:
    def test_the_platform_number_is_shared_in_development_only_unless_set(self) -> None:
        assert Settings.model_construct(ENVIRONMENT="development").platform_from_number_shared
        assert not Settings.model_construct(ENVIRONMENT="production").platform_from_number_shared
        assert Settings.model_construct(
            ENVIRONMENT="production", PLATFORM_FROM_NUMBER_SHARED=True
        ).platform_from_number_shared
        assert not Settings.model_construct(
            ENVIRONMENT="development", PLATFORM_FROM_NUMBER_SHARED=False
        ).platform_from_number_shared

    def test_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PLATFORM_FROM_NUMBER_SHARED", "false")
        assert not Settings().platform_from_number_shared


class TestListing:
    def test_lists_the_accounts_numbers_and_its_default(self, customer: KeyedClient) -> None:
        empty = customer.get("/api/caller-ids").json()
        assert empty == {"items": [], "platformNumber": None, "default": None}
        first = factories.caller_id(customer.account_id)
        second = factories.caller_id(customer.account_id)
        listed = customer.get("/api/caller-ids").json()
        assert [item["number"] for item in listed["items"]] == [first, second]
        assert listed["platformNumber"] is None and listed["default"] == first

    def test_the_shared_platform_number_is_listed_and_is_the_default(
        self, client: TestClient
    ) -> None:
        account_id, key = factories.account()
        own = factories.caller_id(account_id)
        listed = KeyedClient(client, account_id, key).get("/api/caller-ids").json()
        assert [item["number"] for item in listed["items"]] == [own]
        assert listed["platformNumber"] == PLATFORM and listed["default"] == PLATFORM

    def test_needs_a_key(self, client: TestClient) -> None:
        assert client.get("/api/caller-ids").status_code == 401


class TestCampaigns:
    def test_an_own_number_in_any_format_is_saved_in_e164(self, customer: KeyedClient) -> None:
        factories.caller_id(customer.account_id, "+14155550100")
        created = customer.post(
            "/api/campaigns", json={"name": "c", "script": "Hi", "callerId": "(415) 555-0100"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["callerId"] == "+14155550100"

    def test_without_a_caller_id_it_gets_the_accounts_first(self, customer: KeyedClient) -> None:
        first = factories.caller_id(customer.account_id)
        factories.caller_id(customer.account_id)
        created = customer.post("/api/campaigns", json={"name": "c", "script": "Hi"})
        assert created.status_code == 201, created.text
        assert created.json()["callerId"] == first

    @pytest.mark.parametrize("whose", ["another account's", "nobody's", "the platform's"])
    def test_a_number_not_the_accounts_is_422_naming_callerId(
        self, customer: KeyedClient, whose: str
    ) -> None:
        factories.caller_id(customer.account_id)
        other_account, _ = factories.account()
        number = {
            "another account's": factories.caller_id(other_account),
            "nobody's": factories.phone_number(),
            "the platform's": PLATFORM,
        }[whose]
        response = customer.post(
            "/api/campaigns", json={"name": "c", "script": "Hi", "callerId": number}
        )
        loc, msg = detail(response)
        assert loc == ["body", "callerId"]
        assert (
            msg
            == f"{number} is not one of this account's caller IDs (GET /api/caller-ids lists them)"
        )
        assert customer.get("/api/campaigns").json()["total"] == 0

    def test_an_account_without_numbers_cannot_make_one(self, customer: KeyedClient) -> None:
        loc, msg = detail(customer.post("/api/campaigns", json={"name": "c", "script": "Hi"}))
        assert loc == ["body", "callerId"] and "has no caller ID" in msg

    def test_patch_to_a_number_not_the_accounts_is_422(self, customer: KeyedClient) -> None:
        factories.caller_id(customer.account_id)
        campaign = customer.post("/api/campaigns", json={"name": "c", "script": "Hi"}).json()
        stranger = factories.phone_number()
        loc, msg = detail(
            customer.patch(f"/api/campaigns/{campaign['id']}", json={"callerId": stranger})
        )
        assert loc == ["body", "callerId"] and stranger in msg
        assert (
            customer.get(f"/api/campaigns/{campaign['id']}").json()["callerId"]
            == (campaign["callerId"])
        )

    def test_a_bad_number_is_still_422_naming_callerId(self, customer: KeyedClient) -> None:
        response = customer.post(
            "/api/campaigns", json={"name": "c", "script": "x", "callerId": "12"}
        )
        assert detail(response) == (["body", "callerId"], "'12' is not a valid phone number")

    def test_make_toingg_details_without_a_caller_id_is_422(self, customer: KeyedClient) -> None:
        response = customer.post(
            "/api/make_toingg_details",
            json={"campaignName": "new", "campaignScript": "Hi", "phoneNumber": "+14155552671"},
        )
        loc, msg = detail(response)
        assert loc == ["body", "campaignName"] and "has no caller ID" in msg
        assert customer.get("/api/campaigns").json()["total"] == 0


def campaign_from_removed_number(
    customer: KeyedClient, toingg: Callable[..., Ran]
) -> tuple[str, str]:
    """A campaign saved with a number the account has since lost: (campaign id, number)."""
    number = factories.caller_id(customer.account_id)
    factories.caller_id(customer.account_id)  # it still has another
    campaign = customer.post("/api/campaigns", json={"name": "old", "script": "Hi"}).json()
    assert campaign["callerId"] == number
    result = toingg("accounts", "caller-ids", "remove", customer.account_id, number)
    assert result.returncode == 0, result.stdout
    return campaign["id"], number


class TestCallsFromARemovedNumber:
    def test_new_calls_and_batches_are_422_naming_the_campaign(
        self, customer: KeyedClient, toingg: Callable[..., Ran]
    ) -> None:
        _, number = campaign_from_removed_number(customer, toingg)
        call = customer.post(
            "/api/make_toingg/", json={"campaign": "old", "phoneNumber": "+14155552671"}
        )
        loc, msg = detail(call)
        assert loc == ["body", "campaign"]
        assert msg == (
            f"campaign 'old': {number} is not one of this account's caller IDs "
            "(GET /api/caller-ids lists them)"
        )
        batch = customer.post(
            "/api/make_batch_toingg",
            json={"campaign": "old", "numberList": [{"clientNumber": "+14155552671"}]},
        )
        assert detail(batch)[0] == ["body", "campaign"]
        details = customer.post(
            "/api/make_toingg_details",
            json={"campaignName": "old", "campaignScript": "Bye", "phoneNumber": "+14155552671"},
        )
        assert detail(details)[0] == ["body", "campaignName"]
        assert customer.get("/api/calls").json()["total"] == 0

    def test_a_campaign_patched_to_an_own_number_calls_again(
        self, customer: KeyedClient, toingg: Callable[..., Ran]
    ) -> None:
        campaign_id, _ = campaign_from_removed_number(customer, toingg)
        [kept] = customer.get("/api/caller-ids").json()["items"]
        patched = customer.patch(f"/api/campaigns/{campaign_id}", json={"callerId": kept["number"]})
        assert patched.status_code == 200, patched.text
        call = customer.post(
            "/api/make_toingg/", json={"campaign": "old", "phoneNumber": "+14155552671"}
        )
        assert call.status_code == 200, call.text

    def test_a_queued_call_fails_when_taken_never_dialed_and_its_credits_back(
        self, customer: KeyedClient, toingg: Callable[..., Ran]
    ) -> None:
        number = factories.caller_id(customer.account_id)
        customer.post("/api/campaigns", json={"name": "c", "script": "Hi"})
        accepted = customer.post(
            "/api/make_toingg/", json={"campaign": "c", "phoneNumber": "+14155552671"}
        )
        assert accepted.status_code == 200, accepted.text
        call_id = accepted.json()["callId"]
        assert (
            toingg("accounts", "caller-ids", "remove", customer.account_id, number).returncode == 0
        )

        with session_scope() as session:
            # The worker's step before the carrier's: a plan means a create request.
            assert calls_service.take(session, call_id, None) is None

        call = customer.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "failed" and call["callSid"] is None
        assert call["error"] == {
            "code": "caller-id-not-allowed",
            "message": f"{number} is not one of this account's caller IDs "
            "(GET /api/caller-ids lists them)",
        }
        assert customer.get("/api/credits").json()["balance"] == 100


class TestSms:
    def test_from_an_own_number(self, customer: KeyedClient) -> None:
        factories.caller_id(customer.account_id)
        own = factories.caller_id(customer.account_id)
        sent = customer.post(
            "/api/send_sms",
            json={"phoneNumber": "+14155552671", "message": "Hi", "fromNumber": own},
        )
        assert sent.status_code == 200, sent.text
        assert customer.get(f"/api/sms/{sent.json()['smsId']}").json()["fromNumber"] == own

    def test_without_a_sender_it_is_the_default(self, customer: KeyedClient) -> None:
        first = factories.caller_id(customer.account_id)
        sent = customer.post("/api/send_sms", json={"phoneNumber": "+14155552671", "message": "Hi"})
        assert customer.get(f"/api/sms/{sent.json()['smsId']}").json()["fromNumber"] == first

    @pytest.mark.parametrize("sender", [PLATFORM, "+14155550199", "12"])
    def test_from_a_number_not_the_accounts_is_422_naming_fromNumber(
        self, customer: KeyedClient, sender: str
    ) -> None:
        factories.caller_id(customer.account_id)
        response = customer.post(
            "/api/send_sms",
            json={"phoneNumber": "+14155552671", "message": "Hi", "fromNumber": sender},
        )
        loc, msg = detail(response)
        assert loc == ["body", "fromNumber"] and sender in msg
        assert customer.get("/api/credits").json()["balance"] == 100

    def test_an_account_without_numbers_cannot_text(self, customer: KeyedClient) -> None:
        response = customer.post(
            "/api/send_sms", json={"phoneNumber": "+14155552671", "message": "Hi"}
        )
        loc, msg = detail(response)
        assert loc == ["body", "fromNumber"] and "has no caller ID" in msg

    def test_a_queued_sms_from_a_removed_number_fails_and_is_refunded(
        self, customer: KeyedClient, toingg: Callable[..., Ran]
    ) -> None:
        number = factories.caller_id(customer.account_id)
        sent = customer.post("/api/send_sms", json={"phoneNumber": "+14155552671", "message": "Hi"})
        sms_id = sent.json()["smsId"]
        assert customer.get("/api/credits").json()["balance"] == 99
        assert (
            toingg("accounts", "caller-ids", "remove", customer.account_id, number).returncode == 0
        )

        with session_scope() as session:
            assert sms_service.take(session, sms_id, None) is None  # nothing goes to the carrier

        sms = customer.get(f"/api/sms/{sms_id}").json()
        assert sms["status"] == "failed" and sms["messageSid"] is None
        assert sms["errorCode"] == "caller-id-not-allowed" and number in sms["errorMessage"]
        assert customer.get("/api/credits").json()["balance"] == 100


class TestCommands:
    def test_add_list_remove(self, toingg: Callable[..., Ran]) -> None:
        account_id, _ = factories.account()
        added = toingg("accounts", "caller-ids", "add", account_id, "(415) 555-0142")
        assert added.returncode == 0, added.stdout
        assert added.stdout.strip() == f"account {account_id} may call and text from +14155550142"
        listed = toingg("accounts", "caller-ids", "list", account_id, "--json")
        assert '"callerIds": ["+14155550142"]' in listed.stdout
        removed = toingg("accounts", "caller-ids", "remove", account_id, "+14155550142")
        assert removed.returncode == 0 and "+14155550142" in removed.stdout
        again = toingg("accounts", "caller-ids", "remove", account_id, "+14155550142")
        assert again.returncode == 1
        assert again.stdout.strip() == f"+14155550142 is not a caller ID of account {account_id}"

    def test_a_number_is_one_accounts(self, toingg: Callable[..., Ran]) -> None:
        owner, _ = factories.account()
        other, _ = factories.account()
        number = factories.caller_id(owner)
        for account_id, whose in ((other, f"account {owner}"), (owner, "this account")):
            result = toingg("accounts", "caller-ids", "add", account_id, number)
            assert result.returncode == 1
            assert result.stdout.strip() == f"{number} is already a caller ID of {whose}"

    def test_bad_input_is_named(self, toingg: Callable[..., Ran]) -> None:
        account_id, _ = factories.account()
        bad = toingg("accounts", "caller-ids", "add", account_id, "12")
        assert bad.returncode == 1 and bad.stdout.strip() == "'12' is not a valid phone number"
        nobody = toingg("accounts", "caller-ids", "add", "no-such-account", "+14155550143")
        assert nobody.returncode == 1 and nobody.stdout.strip() == "no account 'no-such-account'"
