"""The dispatcher as customers meet it, with a real worker, beat and the sandbox carrier: single
calls are handed out as batches are, so a burst of them at a low dial rate costs each call one
reservation, and one account whose row is held does not hold up the others."""

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from shared.db import get_engine
from shared.models import Account
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until

# Slow enough that a worker's threads, each holding a call, wait longer than RATE_MAX_WAIT_SECONDS
# for their slots.
RATE = 2
STACK_ENV = {"DIAL_RATE_PER_SECOND": str(RATE), "DIAL_BURST": "1"}


def customer(api_server: str, credits: int = 1000) -> Api:
    account_id, key = factories.account(credits=credits)
    factories.campaign(account_id, name="welcome")
    return Api(api_server, key, account_id)


def place(api: Api, number: str) -> str:
    response = api.post(
        "/api/make_toingg", json={"campaign": "welcome", "name": "Ada", "phoneNumber": number}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["callId"])


def statuses(api: Api) -> Counter[str]:
    items = api.get("/api/calls", limit=100).json()["items"]
    return Counter(call["status"] for call in items)


class TestSingleCalls:
    def test_forty_at_once_are_each_placed_once_with_one_reservation_and_one_settlement(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        numbers = [factories.phone_number() for _ in range(40)]
        with ThreadPoolExecutor(max_workers=40) as pool:
            call_ids = list(pool.map(lambda number: place(api, number), numbers))
        # Twenty seconds at two a second.
        wait_until(lambda: statuses(api) == {"completed": 40}, 90, message="all completed")
        # Each completed call cost its one started minute; the rest of its reservation is back.
        balance = lambda: api.get("/api/credits").json()["balance"]  # noqa: E731
        wait_until(lambda: balance() == 1000 - 40, 10, message="every call settled")
        entries = api.get("/api/credits", limit=500).json()["entries"]
        print(f"ledger rows for 40 single calls: {len(entries) - 1} besides the grant")
        rows: dict[str, Counter[str]] = defaultdict(Counter)
        for entry in entries:
            if entry["subjectType"] == "call":
                rows[entry["subjectId"]][entry["reason"]] += 1
        assert sorted(rows) == sorted(call_ids)
        for call_id in call_ids:
            assert rows[call_id] == {"call_reservation": 1, "call_settlement": 1}, rows[call_id]
        placed = Counter(c["to"] for c in carrier.calls() if c["to"] in set(numbers))
        assert placed == dict.fromkeys(numbers, 1)

    def test_one_alone_is_at_the_carrier_within_about_a_tick(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        waits = []
        for _ in range(3):
            number = factories.phone_number()
            accepted = time.time()
            place(api, number)
            wait_until(
                lambda number=number: carrier.calls(to=number), 10, interval=0.02, message="dialed"
            )
            waits.append(carrier.calls(to=number)[0]["created_at"] - accepted)
            time.sleep(1)
        print(f"accepted to dialed: {', '.join(f'{wait:.2f}' for wait in waits)} s")
        assert min(waits) < 1.5, waits


class TestAnAccountWhoseRowIsHeld:
    def test_the_others_batches_are_dialed_meanwhile(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        customers = [customer(api_server) for _ in range(3)]
        held = customers[1]
        numbers = {c.account_id: [factories.phone_number() for _ in range(2)] for c in customers}

        def dialed(account: Api) -> int:
            return sum(1 for c in carrier.calls() if c["to"] in numbers[account.account_id])

        with get_engine().connect() as holder:
            # A transaction holds the account's row, as one that changed its balance does (a
            # long settlement, a stuck session); new calls of the account may still be stored.
            holder.execute(
                select(Account.id)
                .where(Account.id == held.account_id)
                .with_for_update(key_share=True)
            )
            for account in customers:
                rows = [{"clientNumber": n} for n in numbers[account.account_id]]
                response = account.post(
                    "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
                )
                assert response.status_code == 200, response.text
            others = [account for account in customers if account is not held]
            wait_until(
                lambda: all(dialed(account) == 2 for account in others),
                15,
                message="the other accounts' calls dialed while the row is held",
            )
            assert dialed(held) == 0
            holder.rollback()
        wait_until(lambda: dialed(held) == 2, 15, message="the held account's calls dialed")
