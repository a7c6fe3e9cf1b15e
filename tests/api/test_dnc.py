"""The do-not-contact list: kept per account with every add and removal, imported in bulk with
per-row rejects, exported with its history, and the operators' list that binds every account."""

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from shared import cli
from shared.db import get_sessionmaker, session_scope
from shared.dnc import service as dnc
from shared.dnc import sources
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str


@pytest.fixture
def toingg(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = cli.main(list(args))
        return Ran(code, capsys.readouterr().out)

    return run


def detail(response) -> tuple[list[str | int], str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return error["loc"], error["msg"]


def upload(api: KeyedClient, content: bytes, filename: str = "dnc.csv"):  # type: ignore[no-untyped-def]
    return api.client.post(
        "/api/dnc/import",
        params={"apiKey": api.api_key},
        files={"file": (filename, content, "text/csv")},
    )


def remove(api: KeyedClient, number: str, reason: str | None = None):  # type: ignore[no-untyped-def]
    params = {"apiKey": api.api_key} | ({"reason": reason} if reason else {})
    return api.client.delete(f"/api/dnc/{number}", params=params)


def events_of(api: KeyedClient, type_: str) -> list[dict]:  # type: ignore[type-arg]
    answer = api.get("/api/events", type=type_, limit=500)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


class TestTheList:
    def test_an_add_is_listed_with_its_reason_and_source_and_an_event(
        self, api: KeyedClient
    ) -> None:
        number = factories.phone_number()
        national = f"({number[2:5]}) {number[5:8]}-{number[8:]}"
        added = api.post("/api/dnc", {"number": national, "reason": "asked on the phone"})
        assert added.status_code == 201, added.text
        assert added.json()["number"] == number
        assert added.json()["source"] == "api"
        page = api.get("/api/dnc").json()
        assert page["total"] == 1
        assert [item["number"] for item in page["items"]] == [number]
        [event] = events_of(api, "dnc.added")
        assert event["subjectType"] == "dnc"
        assert event["data"]["number"] == number
        assert event["data"]["reason"] == "asked on the phone"
        assert event["data"]["source"] == "api"

    def test_a_removal_keeps_the_history_and_a_new_add_continues_it(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        api.post("/api/dnc", {"number": number, "reason": "first"})
        removed = remove(api, number, "consent given")
        assert removed.status_code == 200, removed.text
        assert removed.json() == {"number": number, "listed": False}
        assert api.get("/api/dnc").json()["total"] == 0
        api.post("/api/dnc", {"number": number, "reason": "second"})
        shown = api.get(f"/api/dnc/{number}").json()
        assert shown["listed"] is True
        assert shown["reason"] == "second"
        assert [(h["action"], h["reason"]) for h in shown["history"]] == [
            ("added", "first"),
            ("removed", "consent given"),
            ("added", "second"),
        ]
        types = [e["type"] for e in reversed(events_of(api, "dnc.*"))]
        assert types == ["dnc.added", "dnc.removed", "dnc.added"]
        assert [e["sequence"] for e in reversed(events_of(api, "dnc.*"))] == [1, 2, 3]

    def test_adding_a_listed_number_again_changes_nothing(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        api.post("/api/dnc", {"number": number, "reason": "first"})
        again = api.post("/api/dnc", {"number": number, "reason": "again"})
        assert again.status_code == 201
        assert again.json()["reason"] == "first"
        assert len(api.get(f"/api/dnc/{number}").json()["history"]) == 1

    def test_one_accounts_list_is_not_anothers(self, api: KeyedClient, client: TestClient) -> None:
        number = factories.phone_number()
        api.post("/api/dnc", {"number": number, "reason": "mine"})
        account_id, key = factories.account()
        other = KeyedClient(client, account_id, key)
        assert other.get("/api/dnc").json()["total"] == 0
        assert other.get(f"/api/dnc/{number}").json()["listed"] is False
        assert other.get(f"/api/dnc/{number}").json()["history"] == []

    def test_bad_input_names_the_field(self, api: KeyedClient) -> None:
        loc, msg = detail(api.post("/api/dnc", {"number": "12", "reason": "x"}))
        assert loc == ["body", "number"] and "not a valid phone number" in msg
        loc, _ = detail(api.post("/api/dnc", {"number": factories.phone_number(), "reason": ""}))
        assert loc == ["body", "reason"]
        loc, _ = detail(api.post("/api/dnc", {"number": factories.phone_number()}))
        assert loc == ["body", "reason"]
        loc, _ = detail(api.get("/api/dnc/not-a-number"))
        assert loc == ["path", "number"]
        missing = remove(api, factories.phone_number())
        assert missing.status_code == 404
        assert "not on the list" in missing.json()["detail"]


class TestImport:
    def test_a_json_array_with_rejects_per_row(self, api: KeyedClient) -> None:
        good = [factories.phone_number() for _ in range(3)]
        api.post("/api/dnc", {"number": good[2], "reason": "before"})
        answer = api.post(
            "/api/dnc/import",
            [
                {"number": good[0], "reason": "complained"},
                good[1],
                "555",
                {"number": good[2]},
                {"number": good[0]},
                {"reason": "no number"},
                7,
            ],
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["added"] == 2
        assert result["alreadyListed"] == 1
        assert result["duplicates"] == 1
        assert [(r["row"], r["value"]) for r in result["rejected"]] == [
            (3, "555"),
            (6, ""),
            (7, "7"),
        ]
        assert "not a valid phone number" in result["rejected"][0]["reason"]
        assert result["rejected"][1]["reason"] == "number: missing"
        first = api.get(f"/api/dnc/{good[0]}").json()
        assert (first["reason"], first["source"]) == ("complained", "api")
        assert api.get(f"/api/dnc/{good[1]}").json()["reason"] == "imported"
        assert api.get(f"/api/dnc/{good[2]}").json()["reason"] == "before"
        assert len(events_of(api, "dnc.added")) == 3

    def test_a_csv_upload_with_a_header_and_rejects(self, api: KeyedClient) -> None:
        numbers = [factories.phone_number() for _ in range(2)]
        content = (
            f"reason,number\nlitigator,{numbers[0]}\n,{numbers[1]}\nbad row,12345\n\n"
        ).encode()
        answer = upload(api, content)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["added"] == 2
        [rejected] = result["rejected"]
        assert (rejected["row"], rejected["value"]) == (4, "12345")  # the header is row 1
        shown = api.get(f"/api/dnc/{numbers[0]}").json()
        assert (shown["reason"], shown["source"]) == ("litigator", "csv")

    def test_a_csv_without_a_header(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        answer = upload(api, f"{number},wrong number\n555,typo\n".encode())
        assert answer.json()["added"] == 1
        assert [r["row"] for r in answer.json()["rejected"]] == [2]
        assert api.get(f"/api/dnc/{number}").json()["reason"] == "wrong number"

    def test_what_cannot_be_read_is_a_4xx_naming_it(self, api: KeyedClient) -> None:
        loc, msg = detail(upload(api, b"\xff\xfe\x00bad"))
        assert loc == ["body", "file"] and "UTF-8" in msg
        loc, _ = detail(api.post("/api/dnc/import", {"number": "+14155550100"}))
        assert loc == ["body"]
        too_many = api.post("/api/dnc/import", ["+14155550100"] * 100_001)
        loc, msg = detail(too_many)
        assert loc == ["body"] and "100,000" in msg
        plain = api.client.post(
            "/api/dnc/import",
            params={"apiKey": api.api_key},
            content=b"x",
            headers={"content-type": "text/plain"},
        )
        assert plain.status_code == 415
        no_file = api.client.post(
            "/api/dnc/import",
            params={"apiKey": api.api_key},
            data={"other": "x"},
            files={"x": ("a", b"")},
        )
        loc, _ = detail(no_file)
        assert loc == ["body", "file"]
        assert api.get("/api/dnc").json()["total"] == 0

    def test_100_000_rows_in_one_upload(self, api: KeyedClient) -> None:
        numbers = [f"+1415{n:07d}" for n in range(5_550_000, 5_650_000)]
        content = ("number,reason\n" + "".join(f"{n},bulk\n" for n in numbers)).encode()
        started = time.monotonic()
        answer = upload(api, content)
        took = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["added"] + len(result["rejected"]) == 100_000
        assert result["added"] > 90_000  # a few of the range are no valid numbers
        assert api.get("/api/dnc", limit=1).json()["total"] == result["added"]
        print(f"\n100,000-row CSV import: {took:.2f} s")


class TestExport:
    def test_the_list_with_its_history_as_csv(self, api: KeyedClient) -> None:
        kept, dropped = factories.phone_number(), factories.phone_number()
        api.post("/api/dnc", {"number": kept, "reason": "asked"})
        api.post("/api/dnc", {"number": dropped, "reason": "by mistake"})
        remove(api, dropped, "opted in")
        answer = api.get("/api/dnc/export")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        got = sorted(
            (r["number"], r["listed"], r["action"], r["reason"], r["source"]) for r in rows
        )
        assert got == sorted(
            [
                (kept, "true", "added", "asked", "api"),
                (dropped, "false", "added", "by mistake", "api"),
                (dropped, "false", "removed", "opted in", "api"),
            ]
        )
        assert all(r["at"] for r in rows)

    def test_a_reason_a_spreadsheet_would_run_is_exported_as_text(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        api.post("/api/dnc", {"number": number, "reason": '=HYPERLINK("http://x")'})
        [row] = list(csv.DictReader(io.StringIO(api.get("/api/dnc/export").text)))
        assert row["reason"] == '\'=HYPERLINK("http://x")'
        assert row["number"] == number


class TestTheGlobalList:
    def test_an_operator_lists_a_number_for_every_account(
        self, api: KeyedClient, toingg: Callable[..., Ran]
    ) -> None:
        number = factories.phone_number()
        ran = toingg("dnc", "add", number, "--global", "--reason", "regulator's list")
        assert ran.returncode == 0, ran.stdout
        assert number in ran.stdout
        account_id, _ = factories.account()
        with session_scope() as session:
            for account in (api.account_id, account_id):
                entry = dnc.listed(session, account, number)
                assert entry is not None and entry.reason == "regulator's list"
        shown = api.get(f"/api/dnc/{number}").json()
        assert (shown["listed"], shown["globallyListed"]) == (False, True)
        listing = toingg("dnc", "list", "--global")
        assert f"{number} (listed): added" in listing.stdout
        assert toingg("dnc", "remove", number, "--global", "--reason", "off").returncode == 0
        with session_scope() as session:
            assert dnc.listed(session, api.account_id, number) is None
        assert "not listed" in toingg("dnc", "list", "--global").stdout

    def test_the_command_refuses_a_bad_number_or_account(self, toingg: Callable[..., Ran]) -> None:
        assert toingg("dnc", "add", "12", "--global", "--reason", "x").returncode == 1
        ran = toingg("dnc", "add", factories.phone_number(), "--account", "nope", "--reason", "x")
        assert ran.returncode == 1 and "no account" in ran.stdout


class TestTwoAddsAtOnce:
    def test_the_second_waits_for_the_first_and_finds_the_number_listed(
        self, api: KeyedClient
    ) -> None:
        number = factories.phone_number()
        held = get_sessionmaker()()
        try:
            dnc.add(held, api.account_id, number, "first", sources.API)
            second = Racer(lambda s: dnc.add(s, api.account_id, number, "second", sources.CSV))
            second.wait_until_blocked()  # on the first's new row, in the unique index
            held.commit()
        finally:
            held.close()
        entry = second.join()
        assert (entry.reason, entry.source) == ("first", "api")
        shown = api.get(f"/api/dnc/{number}").json()
        assert [(h["action"], h["reason"]) for h in shown["history"]] == [("added", "first")]
        assert len(events_of(api, "dnc.added")) == 1

    def test_an_add_and_a_removal_at_once_leave_both_in_the_history(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        with session_scope() as session:
            dnc.add(session, api.account_id, number, "first", sources.API)
        held = get_sessionmaker()()
        try:
            dnc.remove(held, api.account_id, number, "opted in", sources.SMS_KEYWORD)
            again = Racer(lambda s: dnc.add(s, api.account_id, number, "again", sources.KEYPRESS))
            again.wait_until_blocked()  # on the row the removal holds
            held.commit()
        finally:
            held.close()
        again.join()
        shown = api.get(f"/api/dnc/{number}").json()
        assert shown["listed"] is True
        assert [(h["action"], h["source"]) for h in shown["history"]] == [
            ("added", "api"),
            ("removed", "sms_keyword"),
            ("added", "keypress"),
        ]
