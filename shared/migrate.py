"""The schema is made by Alembic migrations, never by create_all at run time."""

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from shared.config import get_settings


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "shared:migrations")
    config.set_main_option("sqlalchemy.url", url or get_settings().database_url)
    return config


def upgrade(url: str | None = None) -> None:
    command.upgrade(alembic_config(url), "head")


def revision(message: str, url: str | None = None) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)


@cache
def head_revisions() -> frozenset[str]:
    # Read from the scripts once: they do not change while the process runs.
    return frozenset(ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads())
