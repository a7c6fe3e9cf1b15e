import pytest
from pydantic import ValidationError

from shared.config import Settings


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

    def test_accepts_real_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in {
            "ENVIRONMENT": "production",
            "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
            "TWILIO_AUTH_TOKEN": "real-token",
            "STRIPE_SECRET_KEY": "sk_live_x",
            "STRIPE_WEBHOOK_SECRET": "whsec_real",
            "FLOWER_BASIC_AUTH": "ops:long-password",
            "REDIS_URL": "redis://redis:6379/0",
        }.items():
            monkeypatch.setenv(name, value)
        assert Settings().ENVIRONMENT == "production"


class TestDatabaseSetting:
    def test_a_sqlite_url_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", "sqlite:///toingg.db")
        with pytest.raises(ValidationError, match="DATABASE_URL must be a PostgreSQL URL"):
            Settings()
