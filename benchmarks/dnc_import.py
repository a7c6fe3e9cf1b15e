"""Do-not-contact import: the time for the API to import 100,000 numbers as a CSV upload and as
a JSON array, and again when every number is listed already, against the time it takes to
accept a batch of the same 100,000 numbers (which parses them as the import does, and inserts
a row and an event for each).

    .venv/bin/python -m benchmarks.dnc_import   # PostgreSQL on this machine by default, an
                                                # embedded Redis unless REDIS_URL is set
"""

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import Stack, numbers
from shared import embedded_redis

COUNT = 100_000


def timed(send: Callable[[], httpx.Response]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = send()
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text[:500]
    return seconds, response.json()


def main() -> None:
    first, second = numbers(COUNT), numbers(COUNT, start=3_000_000)
    csv_body = ("number,reason\n" + "".join(f"{n},asked\n" for n in first)).encode()
    json_body = json.dumps([{"number": n, "reason": "asked"} for n in second]).encode()
    batch_body = json.dumps(
        {"campaign": "bench", "numberList": [{"clientName": "A", "clientNumber": n} for n in first]}
    ).encode()
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis, url = embedded_redis.start(Path(tempfile.mkdtemp()), persist=False)
        os.environ["REDIS_URL"] = url
    stack = Stack(workers=0)
    try:
        stack.start()
        api = httpx.Client(base_url=stack.api_url, params={"apiKey": stack.account()}, timeout=600)
        upload = {"file": ("dnc.csv", csv_body, "text/csv")}
        csv_seconds, csv_result = timed(lambda: api.post("/api/dnc/import", files=upload))
        assert csv_result["added"] == COUNT, csv_result["rejected"][:3]
        json_headers = {"Content-Type": "application/json"}
        json_seconds, json_result = timed(
            lambda: api.post("/api/dnc/import", content=json_body, headers=json_headers)
        )
        assert json_result["added"] == COUNT
        again_seconds, again = timed(lambda: api.post("/api/dnc/import", files=upload))
        assert again["alreadyListed"] == COUNT
        caller = httpx.Client(
            base_url=stack.api_url, params={"apiKey": stack.account()}, timeout=600
        )
        caller.post("/api/campaigns", json={"name": "bench", "script": "Hello {name}"})
        batch_seconds, batch = timed(
            lambda: caller.post("/api/make_batch_toingg", content=batch_body, headers=json_headers)
        )
        assert batch["accepted"] == COUNT
    finally:
        stack.stop()
        if redis is not None:
            redis.terminate()
            redis.wait()
    print(f"{COUNT} numbers: CSV {len(csv_body) / 1e6:.1f} MB, JSON {len(json_body) / 1e6:.1f} MB")
    print(f"CSV upload imported in {csv_seconds:.2f} s, JSON array in {json_seconds:.2f} s")
    print(f"the CSV again, every number listed already: {again_seconds:.2f} s")
    print(f"a batch of the same numbers accepted in {batch_seconds:.2f} s")
    print(f"ratio: CSV import / batch accept {csv_seconds / batch_seconds:.2f}")


if __name__ == "__main__":
    main()
