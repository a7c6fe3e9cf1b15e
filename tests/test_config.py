import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.config import Settings

# Real-looking values for everything production checks: each test changes one.
PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql+psycopg://toingg:secret@db:5432/toingg",
    "REDIS_URL": "redis://:secret@redis:6379/0",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "real-token",
    "TWILIO_FROM_NUMBER": "+14155550100",
    "TWILIO_API_BASE": "https://api.twilio.com",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_real",
    "STRIPE_API_BASE": "https://api.stripe.com",
    "PUBLIC_BASE_URL": "https://dialer.example.com",
    "FLOWER_BASIC_AUTH": "ops:long-password",
}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def refusal(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> str:
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    return str(error.value)


class TestProductionSettings:
    def test_refuses_development_placeholders_naming_each(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        with pytest.raises(ValidationError) as error:
            Settings()
        for name in (
            "TWILIO_AUTH_TOKEN",
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_SECRET_KEY",
            "FLOWER_BASIC_AUTH",
        ):
            assert name in str(error.value)

    def test_accepts_real_values(self, production: pytest.MonkeyPatch) -> None:
        assert Settings().ENVIRONMENT == "production"
        production.delenv("STRIPE_API_BASE")  # the SDK's own: Stripe's
        assert Settings().ENVIRONMENT == "production"

    def test_refuses_the_embedded_database_and_redis(self, production: pytest.MonkeyPatch) -> None:
        message = refusal(production, DATABASE_URL=None, REDIS_URL=None)
        assert "production needs real values for: DATABASE_URL, REDIS_URL" in message

    @pytest.mark.parametrize(
        "base",
        ["http://sandbox:8081", "http://api.twilio.com", "https://twilio.example.com"],
    )
    def test_refuses_a_carrier_that_is_not_twilio(
        self, production: pytest.MonkeyPatch, base: str
    ) -> None:
        message = refusal(production, TWILIO_API_BASE=base)
        assert "TWILIO_API_BASE must be https://api.twilio.com in production" in message

    @pytest.mark.parametrize(
        "base", ["http://sandbox:8081/stripe", "https://stripe.example.com/v1"]
    )
    def test_refuses_a_payment_provider_that_is_not_stripe(
        self, production: pytest.MonkeyPatch, base: str
    ) -> None:
        message = refusal(production, STRIPE_API_BASE=base)
        assert "STRIPE_API_BASE must be https://api.stripe.com in production" in message

    def test_another_https_host_only_when_a_setting_names_it(
        self, production: pytest.MonkeyPatch
    ) -> None:
        production.setenv("TWILIO_API_BASE", "https://api.dublin.ie1.twilio.com")
        production.setenv("TWILIO_API_ALLOWED_HOST", "api.dublin.ie1.twilio.com")
        production.setenv("STRIPE_API_BASE", "https://stripe-proxy.internal")
        production.setenv("STRIPE_API_ALLOWED_HOST", "stripe-proxy.internal")
        assert Settings().TWILIO_API_BASE == "https://api.dublin.ie1.twilio.com"
        # Naming a host does not make plain HTTP to it acceptable.
        message = refusal(production, STRIPE_API_BASE="http://stripe-proxy.internal")
        assert "STRIPE_API_BASE must be" in message

    def test_refuses_a_plain_http_public_url(self, production: pytest.MonkeyPatch) -> None:
        message = refusal(production, PUBLIC_BASE_URL="http://dialer.example.com")
        assert "PUBLIC_BASE_URL must be an https:// URL in production" in message

    @pytest.mark.parametrize(
        "name",
        [
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "FLOWER_BASIC_AUTH",
        ],
    )
    @pytest.mark.parametrize("value", ["", " "])
    def test_refuses_an_empty_secret(
        self, production: pytest.MonkeyPatch, name: str, value: str
    ) -> None:
        # An empty Twilio token is an empty signing key: anyone could sign Twilio's callbacks.
        # Empty Flower credentials leave Flower open to anyone.
        message = refusal(production, **{name: value})
        assert f"production needs real values for: {name}" in message

    @pytest.mark.parametrize("value", ["ops", "ops:", ":long-password", "ops:pw,admin"])
    def test_flower_credentials_are_a_user_and_a_password(
        self, production: pytest.MonkeyPatch, value: str
    ) -> None:
        message = refusal(production, FLOWER_BASIC_AUTH=value)
        assert "FLOWER_BASIC_AUTH must be user:password" in message
        assert value not in message.split("FLOWER_BASIC_AUTH must be")[1]

    def test_several_flower_users_are_taken(self, production: pytest.MonkeyPatch) -> None:
        production.setenv("FLOWER_BASIC_AUTH", "ops:long-password,oncall:another-one")
        assert Settings().FLOWER_BASIC_AUTH == "ops:long-password,oncall:another-one"

    def test_refuses_the_sandboxs_from_number(self, production: pytest.MonkeyPatch) -> None:
        # Twilio's test-credentials number: no live account calls from it.
        message = refusal(production, TWILIO_FROM_NUMBER=None)
        assert "production needs real values for: TWILIO_FROM_NUMBER" in message
        message = refusal(production, TWILIO_FROM_NUMBER="+15005550006")
        assert "production needs real values for: TWILIO_FROM_NUMBER" in message

    def test_names_every_problem_at_once(self, production: pytest.MonkeyPatch) -> None:
        message = refusal(
            production,
            TWILIO_AUTH_TOKEN="dev-twilio-auth-token",
            TWILIO_API_BASE="http://sandbox:8081",
            PUBLIC_BASE_URL="http://api:8000",
        )
        for name in ("TWILIO_AUTH_TOKEN", "TWILIO_API_BASE", "PUBLIC_BASE_URL"):
            assert name in message


class TestRefusalsShowNoValue:
    def test_a_validation_error_shows_no_setting_value(
        self, production: pytest.MonkeyPatch
    ) -> None:
        # What a process that reads the settings without settings_or_exit (`celery -A
        # workers.celery_app ...`) prints as it fails: pydantic's own message showed a
        # setting's value, a password among them.
        for name in Settings.model_fields:  # only these, so a secret is the last one read
            if name not in PRODUCTION:
                production.delenv(name, raising=False)
        secrets = {
            "TWILIO_AUTH_TOKEN": "token-SECRET",
            "STRIPE_SECRET_KEY": "sk_live_SECRET",
            "FLOWER_BASIC_AUTH": "ops:password-SECRET",
            "DATABASE_URL": "postgresql+psycopg://toingg:db-SECRET@db/toingg",
            "REDIS_URL": "redis://:redis-SECRET@redis:6379/0",
        }
        message = refusal(production, **secrets, STRIPE_WEBHOOK_SECRET="whsec_development")
        assert "STRIPE_WEBHOOK_SECRET" in message
        assert "SECRET" not in message.replace("STRIPE_WEBHOOK_SECRET", "")


class TestProductionStripeMode:
    # A test-mode key takes Stripe's test card 4242 4242 4242 4242 as payment: credits bought
    # with it place real calls on the real Twilio account.
    @pytest.mark.parametrize("key", ["sk_test_51Hreal0looking0key", "rk_test_51Hrestricted"])
    def test_a_test_mode_key_is_refused(self, production: pytest.MonkeyPatch, key: str) -> None:
        assert "STRIPE_SECRET_KEY is a test-mode key" in refusal(production, STRIPE_SECRET_KEY=key)

    def test_a_test_mode_key_is_taken_when_test_mode_is_allowed(
        self, production: pytest.MonkeyPatch
    ) -> None:
        production.setenv("STRIPE_SECRET_KEY", "sk_test_51Hreal0looking0key")
        production.setenv("STRIPE_TEST_MODE_ALLOWED", "true")
        assert Settings().STRIPE_SECRET_KEY == "sk_test_51Hreal0looking0key"

    def test_a_restricted_live_key_is_taken(self, production: pytest.MonkeyPatch) -> None:
        production.setenv("STRIPE_SECRET_KEY", "rk_live_51Hrestricted")
        assert Settings().STRIPE_SECRET_KEY == "rk_live_51Hrestricted"


class TestDatabaseSetting:
    def test_a_sqlite_url_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", "sqlite:///toingg.db")
        with pytest.raises(ValidationError, match="DATABASE_URL must be a PostgreSQL URL"):
            Settings()

    def test_production_refuses_it_too(self, production: pytest.MonkeyPatch) -> None:
        message = refusal(production, DATABASE_URL="sqlite:///toingg.db")
        assert "DATABASE_URL must be a PostgreSQL URL" in message


class TestDatabaseUrlForms:
    @pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
    def test_the_schemes_that_hosting_platforms_and_libpq_write_mean_psycopg(
        self, monkeypatch: pytest.MonkeyPatch, scheme: str
    ) -> None:
        # Heroku, Render and Fly set DATABASE_URL=postgres://...; libpq and psql take either.
        monkeypatch.setenv("DATABASE_URL", f"{scheme}://toingg:secret@db.internal:5432/toingg")
        try:
            settings = Settings()
        except ValidationError as exc:
            pytest.fail(f"refused: {exc.errors()[0]['msg']}")
        assert settings.database_url == "postgresql+psycopg://toingg:secret@db.internal:5432/toingg"

    def test_a_driver_the_product_does_not_ship_is_refused_naming_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Otherwise accepted, and every process fails at its first query with
        # ModuleNotFoundError: No module named 'asyncpg'.
        monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://toingg@db/toingg")
        with pytest.raises(ValidationError, match="DATABASE_URL names the driver 'asyncpg'"):
            Settings()


def start(argv: list[str], cwd: Path, **changes: str) -> subprocess.CompletedProcess[str]:
    """A process as an operator starts it, with production's settings and `changes`, in a
    folder of its own (no .env, no embedded servers to find)."""
    env = {**os.environ, **PRODUCTION, **changes}
    return subprocess.run(
        [sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


class TestRefusedAtStart:
    """Each process checks its settings as it starts and exits naming what is wrong, instead of
    starting and failing its requests later (the API answered its health check 200, and 500 to
    every real request)."""

    @pytest.mark.parametrize(
        "command",
        [
            ["api", "--port", "0"],
            ["worker"],
            ["beat"],
            ["flower", "--port", "0"],
            ["db", "upgrade"],
            ["accounts", "create", "--name", "acme"],
        ],
        ids=" ".join,
    )
    def test_production_on_a_development_secret_exits_naming_it(
        self, tmp_path: Path, command: list[str]
    ) -> None:
        started = start(
            ["-m", "shared.cli", *command], tmp_path, STRIPE_WEBHOOK_SECRET="whsec_development"
        )
        assert started.returncode != 0
        assert "refusing to start" in started.stderr
        assert "STRIPE_WEBHOOK_SECRET" in started.stderr
        # The message names the settings, never their values.
        assert "real-token" not in started.stderr

    @pytest.mark.parametrize(
        "argv",
        [
            ["-m", "celery", "-A", "workers.celery_app", "worker", "--pool=solo"],
            ["-m", "celery", "-A", "workers.celery_app", "beat"],
            ["-m", "uvicorn", "api.main:create_app", "--factory", "--port", "0"],
        ],
        ids=lambda argv: " ".join(argv[1:4]),
    )
    def test_started_without_the_toingg_command_it_exits_naming_it_too(
        self, tmp_path: Path, argv: list[str]
    ) -> None:
        started = start(argv, tmp_path, STRIPE_WEBHOOK_SECRET="whsec_development")
        assert started.returncode != 0
        assert "refusing to start" in started.stderr
        assert "STRIPE_WEBHOOK_SECRET" in started.stderr
        assert "Traceback" not in started.stderr
        assert "real-token" not in started.stderr
        assert "long-password" not in started.stderr

    def test_the_development_stack_refuses_production(self, tmp_path: Path) -> None:
        # `toingg run` makes a demo account with free credits, beside the embedded servers
        # and the sandbox.
        started = start(["-m", "shared.cli", "run", "--port", "0"], tmp_path)
        assert started.returncode != 0
        assert "toingg run: refusing to start with ENVIRONMENT=production" in started.stderr
        assert not (tmp_path / ".toingg").exists()

    def test_production_with_an_empty_twilio_token_exits_naming_it(self, tmp_path: Path) -> None:
        started = start(["-m", "shared.cli", "api", "--port", "0"], tmp_path, TWILIO_AUTH_TOKEN="")
        assert started.returncode != 0
        assert "production needs real values for: TWILIO_AUTH_TOKEN" in started.stderr

    def test_the_sandbox_refuses_production_whatever_its_secrets(self, tmp_path: Path) -> None:
        for argv in (["-m", "shared.cli", "sandbox"], ["-m", "sandbox"]):
            started = start(argv, tmp_path, SANDBOX_PORT="0")
            assert started.returncode != 0
            assert "refusing to start with ENVIRONMENT=production" in started.stderr
