"""docker-compose.yml is the production shape: it must name every piece and speak the same
environment as the code (the `docker-compose config` check itself needs Docker's tooling)."""

from pathlib import Path

import yaml

from shared.config import Settings

COMPOSE = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())


class TestCompose:
    def test_has_the_whole_stack(self) -> None:
        assert {"postgres", "redis", "api", "worker", "beat", "flower", "sandbox"} <= set(
            COMPOSE["services"]
        )

    def test_redis_keeps_the_queue_and_never_evicts_it(self) -> None:
        command = COMPOSE["services"]["redis"]["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"

    def test_every_env_name_is_a_setting(self) -> None:
        env = COMPOSE["x-toingg-env"]
        assert set(env) <= set(Settings.model_fields)
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
