"""The compose files, read as Compose reads them (Docker itself may be missing where the tests run):
docker-compose.yml is the production shape, and compose.dev.yml with compose.dev.env turns it into
a development stack on the sandbox. Their environments are checked against the settings' own
validation, so a file the settings would refuse fails here, not at `up`."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.cli.stack import flower_argv, webhook_worker_argv, worker_argv
from shared.config import Settings

ROOT = Path(__file__).parents[1]
PRODUCTION_TEXT = (ROOT / "docker-compose.yml").read_text()
PRODUCTION = yaml.safe_load(PRODUCTION_TEXT)
DEV = yaml.safe_load((ROOT / "compose.dev.yml").read_text())
DEV_VARIABLES = dict(
    line.split("=", 1)
    for line in (ROOT / "compose.dev.env").read_text().splitlines()
    if line and not line.startswith("#")
)
DEV_COMMAND = (
    "docker-compose --env-file compose.dev.env -f docker-compose.yml -f compose.dev.yml up"
)

APP_SERVICES = ("migrate", "api", "worker", "webhooks", "beat", "flower")
LONG_RUNNING = ("postgres", "redis", "api", "worker", "webhooks", "beat", "flower")
# Every variable that holds a secret, or that production cannot guess.
REQUIRED = (
    "POSTGRES_PASSWORD", "REDIS_PASSWORD", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PUBLIC_BASE_URL",
    "FLOWER_BASIC_AUTH",
)  # fmt: skip
# What an operator would set: real-looking values for everything required.
OPERATOR = {
    "POSTGRES_PASSWORD": "pg0secret",
    "REDIS_PASSWORD": "redis0secret",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "real-token",
    "TWILIO_FROM_NUMBER": "+14155550100",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_real",
    "PUBLIC_BASE_URL": "https://dialer.example.com",
    "FLOWER_BASIC_AUTH": "ops:long-password",
}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's interpolation of one value: ${NAME}, ${NAME:-default}, ${NAME:?message}."""
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise LookupError(f"required variable {name} is missing a value: {argument}")
        return argument if operator == ":-" else ""

    return VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict[str, Any], variables: dict[str, str]) -> dict[str, str]:
    return {
        name: str(interpolate(value, variables))
        for name, value in (service.get("environment") or {}).items()
    }


def merged_environment(name: str, variables: dict[str, str]) -> dict[str, str]:
    """A service's environment with both files, as Compose merges them: key by key."""
    env = environment(PRODUCTION["services"].get(name, {}), variables)
    return env | environment(DEV["services"].get(name, {}), variables)


def validated(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings from `env` alone, as the container would read them."""
    for field in Settings.model_fields:
        monkeypatch.delenv(field, raising=False)
    known = {k: v for k, v in env.items() if k in Settings.model_fields}
    return Settings(_env_file=None, **known)  # type: ignore[call-arg]


class TestProductionFile:
    def test_has_the_whole_stack_and_no_sandbox(self) -> None:
        assert set(PRODUCTION["services"]) == {*LONG_RUNNING, "migrate"}
        for service in PRODUCTION["services"].values():
            assert not any("sandbox" in v for v in environment(service, OPERATOR).values())

    def test_the_plain_http_api_is_published_on_this_host_only(self) -> None:
        # PUBLIC_BASE_URL must be https and the API speaks plain HTTP: a TLS proxy stands in
        # front of it, and plain HTTP must not be open beside it.
        ports = PRODUCTION["services"]["api"]["ports"]
        assert ports and all(str(port).startswith("127.0.0.1:") for port in ports), ports

    def test_every_secret_is_required_never_defaulted(self) -> None:
        uses: dict[str, set[str]] = {}
        for name, operator, _ in VARIABLE.findall(PRODUCTION_TEXT):
            uses.setdefault(name, set()).add(operator)
        for name in REQUIRED:
            assert uses.get(name) == {":?"}, f"{name} is used as {uses.get(name)}"
        for placeholder in ("dev-twilio-auth-token", "whsec_development", "sk_test_sandbox"):
            assert placeholder not in PRODUCTION_TEXT
        assert "admin:admin" not in PRODUCTION_TEXT
        assert "AC" + "0" * 32 not in PRODUCTION_TEXT

    def test_refuses_to_start_without_its_secrets(self) -> None:
        for missing in REQUIRED:
            variables = {k: v for k, v in OPERATOR.items() if k != missing}
            with pytest.raises(LookupError, match=missing):
                for service in PRODUCTION["services"].values():
                    environment(service, variables)
                for config in PRODUCTION["configs"].values():
                    interpolate(config["content"], variables)

    def test_the_settings_accept_it_in_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in APP_SERVICES:
            settings = validated(environment(PRODUCTION["services"][name], OPERATOR), monkeypatch)
            assert settings.ENVIRONMENT == "production"
            assert settings.TWILIO_API_BASE == "https://api.twilio.com"
            assert settings.STRIPE_API_BASE == "https://api.stripe.com"
            assert settings.DATABASE_URL is not None
            assert settings.DATABASE_URL.startswith("postgresql+psycopg://")

    def test_without_the_dev_file_the_dev_values_are_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # compose.dev.env given alone: production on the development placeholders must not run.
        env = environment(PRODUCTION["services"]["api"], DEV_VARIABLES)
        with pytest.raises(ValueError, match="production needs real values"):
            validated(env, monkeypatch)

    def test_restart_policies_and_healthchecks_on_every_service(self) -> None:
        for name in LONG_RUNNING:
            service = PRODUCTION["services"][name]
            assert service.get("restart") in ("unless-stopped", "always"), name
            assert service.get("healthcheck", {}).get("test"), name

    def test_redis_has_a_password_keeps_the_queue_and_never_evicts_it(self) -> None:
        redis = PRODUCTION["services"]["redis"]
        command = redis["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
        assert "ports" not in redis and "ports" not in PRODUCTION["services"]["postgres"]
        # The password from a file Redis reads, not its command line; clients use it.
        assert not any("requirepass" in part for part in command)
        [config] = redis["configs"]
        assert config["target"] in command
        auth = interpolate(PRODUCTION["configs"][config["source"]]["content"], OPERATOR)
        assert auth.strip() == f"requirepass {OPERATOR['REDIS_PASSWORD']}"
        env = environment(PRODUCTION["services"]["api"], OPERATOR)
        assert env["REDIS_URL"] == f"redis://:{OPERATOR['REDIS_PASSWORD']}@redis:6379/0"
        assert environment(redis, OPERATOR)["REDISCLI_AUTH"] == OPERATOR["REDIS_PASSWORD"]

    def test_flower_credentials_are_on_no_command_line(self) -> None:
        flower = PRODUCTION["services"]["flower"]
        assert not any("auth" in part for part in flower["command"])
        assert "FLOWER_BASIC_AUTH" in flower["environment"]
        # The command `toingg flower` runs Flower with.
        assert not any("basic-auth" in part for part in flower_argv("0.0.0.0", 5555))

    def test_flower_is_published_on_this_host_only(self) -> None:
        assert PRODUCTION["services"]["flower"]["ports"] == ["127.0.0.1:5555:5555"]

    def test_the_workers_threads_fit_its_database_pool(self) -> None:
        worker = PRODUCTION["services"]["worker"]
        command = worker["command"]
        threads = int(command[command.index("--concurrency") + 1])
        env = environment(worker, OPERATOR)
        defaults = Settings.model_fields
        pool = int(env.get("DATABASE_POOL_SIZE", defaults["DATABASE_POOL_SIZE"].default))
        overflow = int(env.get("DATABASE_MAX_OVERFLOW", defaults["DATABASE_MAX_OVERFLOW"].default))
        assert threads <= pool + overflow

    @pytest.mark.parametrize("name", ["worker", "webhooks"])
    def test_a_worker_healthcheck_pings_the_workers_own_node(self, name: str) -> None:
        worker = PRODUCTION["services"][name]
        command = worker["command"]
        assert command[command.index("--hostname") + 1] == f"{name}@%h"
        [_, check] = worker["healthcheck"]["test"]
        assert f'--destination "{name}@$HOSTNAME"' in interpolate(check, OPERATOR)
        assert "--hostname=worker@%h" in worker_argv(16, "calls", "worker@%h")
        assert "--hostname=webhooks@%h" in webhook_worker_argv("webhooks@%h")

    def test_every_env_name_is_a_setting(self) -> None:
        assert set(PRODUCTION["x-toingg-env"]) <= set(Settings.model_fields)


class TestDevFile:
    def test_adds_the_sandbox_with_a_restart_policy_and_a_healthcheck(self) -> None:
        sandbox = DEV["services"]["sandbox"]
        assert sandbox["command"] == ["toingg", "sandbox"]
        assert sandbox.get("restart") == "unless-stopped"
        assert sandbox.get("healthcheck", {}).get("test")

    def test_every_published_port_is_on_this_host_only(self) -> None:
        # The sandbox's control API (every call, every text, a text sent as anyone) asks for no
        # credentials and the development secrets are public: not reachable from other machines.
        ports = [
            str(port) for service in DEV["services"].values() for port in service.get("ports", [])
        ]
        assert ports and all(port.startswith("127.0.0.1:") for port in ports), ports

    def test_gives_every_required_variable_a_development_value(self) -> None:
        assert set(REQUIRED) <= {k for k, v in DEV_VARIABLES.items() if v}

    def test_the_settings_accept_it_in_development_on_the_sandbox(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in APP_SERVICES:
            settings = validated(merged_environment(name, DEV_VARIABLES), monkeypatch)
            assert settings.ENVIRONMENT == "development", name
            assert settings.TWILIO_API_BASE == "http://sandbox:8081", name
            assert settings.STRIPE_API_BASE == "http://sandbox:8081/stripe", name
        sandbox = validated(merged_environment("sandbox", DEV_VARIABLES), monkeypatch)
        assert sandbox.ENVIRONMENT == "development"
        # The sandbox checks Twilio's Basic auth and signs Stripe events as the API expects.
        api = validated(merged_environment("api", DEV_VARIABLES), monkeypatch)
        for field in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "STRIPE_WEBHOOK_SECRET"):
            assert getattr(sandbox, field) == getattr(api, field)

    def test_the_readme_shows_how_to_run_it(self) -> None:
        assert DEV_COMMAND in (ROOT / "README.md").read_text()
