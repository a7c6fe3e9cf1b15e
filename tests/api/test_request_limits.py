"""A request's size and order: the API key (in the query or a header) is checked before any body
is read, and every body is capped while it streams in (the batch routes' cap is larger), so an
unauthenticated or oversized body costs the API no memory."""

import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import BATCH_BODY_BYTES, SMALL_BODY_BYTES, create_app
from shared.cli.stack import api_argv
from shared.config import get_settings
from shared.embedded_redis import free_port
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import ServerProcess, ServerThread

JSON = {"Content-Type": "application/json"}
FORM = "application/x-www-form-urlencoded"
MiB = 1024 * 1024


def chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    """A body sent chunked: no Content-Length tells the server how long it is."""
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


class TestKeyBeforeBody:
    def test_bad_json_without_a_key_is_401(self, client: TestClient) -> None:
        response = client.post("/api/make_toingg/", content=b"{not json", headers=JSON)
        assert response.status_code == 401
        assert "missing API key" in response.json()["detail"]

    def test_bad_json_with_an_unknown_key_is_401(self, client: TestClient) -> None:
        response = client.post(
            "/api/make_batch_toingg", content=b"{not json", headers=JSON, params={"apiKey": "tg_x"}
        )
        assert response.status_code == 401

    def test_a_body_of_another_type_without_a_key_is_401(self, client: TestClient) -> None:
        response = client.post(
            "/api/send_sms", content=b"a=1", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 401

    def test_bad_json_with_a_key_is_422(self, api: KeyedClient) -> None:
        response = api.client.post(
            "/api/make_toingg/", content=b"{not json", headers=JSON, params={"apiKey": api.api_key}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["type"] == "json_invalid"


class TestBodyCap:
    def test_a_body_over_the_limit_is_413_naming_it(self, api: KeyedClient) -> None:
        body = {
            "campaign": "welcome",
            "name": "A" * SMALL_BODY_BYTES,
            "phoneNumber": "+14155552671",
        }
        response = api.post("/api/make_toingg/", json=body)
        assert response.status_code == 413
        assert response.json() == {
            "detail": "the request body is larger than this route's limit of 64 KiB (65,536 bytes)"
        }

    def test_a_content_length_that_lies_changes_nothing(self, api: KeyedClient) -> None:
        response = api.client.post(
            "/api/make_toingg/",
            content=b" " * (SMALL_BODY_BYTES + 1),
            headers={**JSON, "Content-Length": "10"},
            params={"apiKey": api.api_key},
        )
        assert response.status_code == 413

    def test_a_chunked_body_is_counted_as_it_arrives(self, api: KeyedClient) -> None:
        response = api.client.post(
            "/api/make_toingg/",
            content=chunks(SMALL_BODY_BYTES + 1, size=4096),
            headers=JSON,
            params={"apiKey": api.api_key},
        )
        assert response.status_code == 413
        assert "64 KiB" in response.json()["detail"]

    def test_a_batch_may_be_larger(self, api: KeyedClient) -> None:
        rows = [
            {
                "clientName": f"Client {i:05d} with a longer name",
                "clientNumber": factories.phone_number(),
            }
            for i in range(3000)
        ]
        response = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert response.status_code == 200, response.text[:300]
        assert response.json()["accepted"] == 3000

    @pytest.mark.parametrize(
        ("path", "content_type"),
        [
            ("/api/create-checkout-session", "application/json"),
            ("/api/webhook", "application/json"),
            ("/api/twilio/voice/some-call", FORM),
            ("/api/twilio/call-status?callId=x", FORM),
            ("/api/twilio/sms-status?smsId=x", FORM),
        ],
    )
    def test_routes_that_authenticate_from_their_body_get_the_small_limit_first(
        self, client: TestClient, path: str, content_type: str
    ) -> None:
        for content in (b"a" * (SMALL_BODY_BYTES + 1), chunks(SMALL_BODY_BYTES + 1, size=4096)):
            response = client.post(path, content=content, headers={"Content-Type": content_type})
            assert response.status_code == 413, response.text
            assert "64 KiB" in response.json()["detail"]


@pytest.fixture(scope="module")
def api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The API as `toingg api` runs it, in a process of its own: its memory is measured."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        f"{url}/api/health",
        tmp_path_factory.mktemp("api") / "api.log",
        env=dict(os.environ),
    )
    server.start()
    assert server.process is not None
    yield url, server.process.pid
    server.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The process's resident memory, sampled every 5 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def __enter__(self) -> "PeakRss":
        self.start = rss_mib(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.005)

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for the RSS")
class TestOverHttp:
    def _warm(self, url: str) -> None:
        # The first requests load code and open connections: not what is measured.
        for _ in range(3):
            httpx.post(f"{url}/api/make_toingg/", content=b"{}", headers=JSON)
            httpx.post(f"{url}/api/make_toingg/", content=chunks(100_000), headers=JSON)
            httpx.post(f"{url}/api/make_toingg/", json={}, params={"apiKey": "tg_warm"})

    def test_a_200_mb_post_without_a_key_leaves_the_memory_flat(
        self, api_process: tuple[str, int]
    ) -> None:
        url, pid = api_process
        self._warm(url)
        size = 200 * MiB
        for path in ("/api/make_toingg/", "/api/make_batch_toingg"):
            for headers in ({**JSON, "Content-Length": str(size)}, JSON):  # declared, chunked
                with PeakRss(pid) as rss:
                    started = time.monotonic()
                    response = httpx.post(
                        f"{url}{path}", content=chunks(size), headers=headers, timeout=60
                    )
                    took = time.monotonic() - started
                print(f"{path} {headers}: {response.status_code} in {took:.2f} s, "
                      f"RSS {rss.start:.0f} -> peak {rss.peak:.0f} MiB")  # fmt: skip
                assert response.status_code in (401, 413), response.text
                assert rss.peak - rss.start <= 5

    def test_a_chunked_body_over_the_limit_is_413(self, api_process: tuple[str, int]) -> None:
        url, _ = api_process
        _, key = factories.account(credits=10)
        for path, limit in (
            ("/api/make_toingg/", "64 KiB"),
            ("/api/make_batch_toingg", "32 MiB"),
        ):
            total = (BATCH_BODY_BYTES if "batch" in path else SMALL_BODY_BYTES) + 1
            response = httpx.post(
                f"{url}{path}",
                content=chunks(total),
                headers=JSON,
                params={"apiKey": key},
                timeout=60,
            )
            assert response.status_code == 413, response.text
            assert limit in response.json()["detail"]


class TestBatchBodyMemory:
    """A batch body is refused for its count of JSON values before it is parsed."""

    def test_a_batch_body_within_its_cap_costs_no_more_than_a_few_times_its_size(
        self, client: TestClient
    ) -> None:
        account_id, key = factories.account(credits=10)
        factories.caller_id(account_id)
        factories.campaign(account_id, name="mem")
        # 32 MiB of empty rows: each three bytes of JSON is a Python dict of about 64.
        rows = (BATCH_BODY_BYTES - 100) // 3
        body = b'{"campaign":"mem","numberList":[' + b"{}," * (rows - 1) + b"{}]}"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        response = client.post(
            "/api/make_batch_toingg",
            content=body,
            headers={"Content-Type": "application/json"},
            params={"apiKey": key},
        )
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert response.status_code == 422
        assert grown_mib < 4 * BATCH_BODY_BYTES / 2**20, f"grew {grown_mib:.0f} MiB"


class TestSlowBodies:
    def test_bodies_that_never_finish_do_not_take_every_slot(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "REQUEST_BODY_SECONDS", 0.5)
        slots = 5  # MAX_CONCURRENT_REQUESTS (200) in production: as many sockets
        port = free_port()
        server = ServerThread(create_app(), port, limit_concurrency=slots)
        server.start()
        held = []
        try:
            # No key needed: Stripe's webhook authenticates from its body. Each sends the
            # headers and a few bytes of the 1,000 it promised, then nothing. Uvicorn counts
            # the connection asking for a slot, so one fewer take every slot.
            for _ in range(slots - 1):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(
                    b"POST /api/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{"
                )
                held.append(sock)
            time.sleep(1.0)
            answer = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            assert answer.status_code == 200, answer.text
            for sock in held:
                sock.settimeout(5)
                refused = sock.recv(4096)
                assert refused.startswith(b"HTTP/1.1 408"), refused
                assert b"within 0.5 seconds" in refused
                assert sock.recv(4096) == b""  # closed: the slot is free
        finally:
            for sock in held:
                sock.close()
            server.stop()

    @pytest.mark.parametrize(
        ("framing", "status"),
        [
            ("Content-Length: 1000", b"401"),  # no key: answered before the body is read
            ("Transfer-Encoding: chunked", b"401"),
            (f"Content-Length: {BATCH_BODY_BYTES + 1}", b"413"),  # over the limit as declared
        ],
    )
    def test_a_body_refused_before_it_is_read_does_not_keep_its_connection(
        self, framing: str, status: bytes
    ) -> None:
        # Answered early, the rest of the body is never wanted: a sender that goes on
        # trickling it must not hold the connection (a slot of --limit-concurrency) for as
        # long as it likes, as it would were the server to read on, waiting for the next
        # request.
        port = free_port()
        server = ServerThread(create_app(), port, limit_concurrency=5)
        server.start()
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(
                f"POST /api/make_batch_toingg HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode()
            )
            sock.settimeout(10)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 " + status), answer
            assert b"connection: close" in answer.lower(), answer
            sock.settimeout(0.2)
            closed_after = None
            started = time.monotonic()
            while time.monotonic() - started < 8:
                try:
                    sock.sendall(b"1")  # one more byte of the body, a few a second
                    if sock.recv(4096) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = time.monotonic() - started
                    break
            assert closed_after is not None and closed_after < 2, closed_after
        finally:
            sock.close()
            server.stop()


class TestHugeHeaders:
    def test_a_huge_header_without_a_key_costs_the_api_no_memory(self) -> None:
        def rss_mib() -> float:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * 4096 / 2**20

        # `toingg api` runs h11, which answers 400 past 16 KiB of an unfinished header block;
        # so does the test server.
        assert "h11" in api_argv("127.0.0.1", 8000)
        port = free_port()
        server = ServerThread(create_app(), port, limit_concurrency=200)
        server.start()
        try:
            before = rss_mib()
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /api/make_batch_toingg HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            try:
                for _ in range(64):  # 64 MiB of one header, never ended
                    sock.sendall(b"a" * 2**20)
            except OSError:
                pass  # refused early: what should happen
            time.sleep(0.5)
            grown = rss_mib() - before
            sock.close()
            assert grown < 16, f"the API grew {grown:.0f} MiB"
        finally:
            server.stop()
