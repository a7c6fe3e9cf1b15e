"""Schemathesis over the API's own OpenAPI description, the API served over HTTP and every
request carrying a real key (schemathesis.toml): its examples, coverage and fuzzing phases, and
no answer may be a server error (500 or above)."""

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db import session_scope
from tests import factories
from tests.stack import Api

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(900)]

CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"
# Per operation and phase: enough to reach every route's validation, a few minutes in all.
MAX_EXAMPLES = 50


def command(url: str, config: Path) -> list[str]:
    """What the README shows, with this run's configuration."""
    return [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{url}/api/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip


def resources(api: Api) -> dict[str, str]:
    """A call, a batch and an SMS of the fuzzed account, its campaign's name and a valid number,
    so requests reach past "not found" and "invalid number" into what each route does."""
    call = api.post(
        "/api/make_toingg/",
        json={"campaign": "welcome", "name": "Ada", "phoneNumber": factories.phone_number()},
    )
    batch = api.post(
        "/api/make_batch_toingg",
        json={
            "campaign": "welcome",
            "numberList": [{"clientName": "Ada", "clientNumber": factories.phone_number()}],
        },
    )
    sms = api.post(
        "/api/send_sms", json={"phoneNumber": factories.phone_number(), "message": "Hello"}
    )
    for response in (call, batch, sms):
        assert response.status_code == 200, response.text
    return {
        "path.call_ref": call.json()["callId"],
        "path.batch_id": batch.json()["batchId"],
        "path.sms_ref": sms.json()["smsId"],
        "body.campaign": "welcome",
        # Reaches what is done with an accepted call's or message's other fields.
        "body.phoneNumber": factories.phone_number(),
    }


@pytest.fixture
def fuzzed_key() -> Iterator[str]:
    """The fuzzed account's key. Afterwards nothing it was sent is left to dial or send: the
    test modules after this one run workers, and their calls must not queue behind these."""
    account_id, key = factories.account(credits=1_000_000, name="fuzzed")
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    yield key
    with session_scope() as session:
        for table, stopped, waiting in (
            ("calls", "canceled", "'queued', 'insufficient-credits'"),
            ("sms_messages", "failed", "'queued'"),
            ("batches", "canceled", "'queued', 'running', 'paused'"),
        ):
            session.execute(
                text(
                    f"UPDATE {table} SET status = :stopped "
                    f"WHERE account_id = :account AND status IN ({waiting})"
                ),
                {"stopped": stopped, "account": account_id},
            )


def test_no_request_gets_a_server_error(
    api_server: str, carrier_server: str, fuzzed_key: str, tmp_path: Path
) -> None:
    key = fuzzed_key
    parameters = {
        **tomllib.loads(CONFIG.read_text())["parameters"],
        **resources(Api(api_server, key)),
    }
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in parameters.items())
    )
    run = subprocess.run(
        command(api_server, config),
        env={**os.environ, "TOINGG_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=840,
        cwd=tmp_path,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
