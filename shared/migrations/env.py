import time

from alembic import context
from sqlalchemy import Connection, text

import shared.models  # noqa: F401  (registers every table on Base.metadata)
from shared.db import Base, build_engine
from shared.models._columns import UTCDateTime

config = context.config


def _render_item(type_: str, obj: object, _context: object) -> str | bool:
    # Migrations must not import the application's types: they outlive them.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = build_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        # One upgrade at a time (two commands started together on a new database): the second
        # waits here, then finds the schema at head. A session's lock, as a migration may commit
        # on its way; it ends as dispose closes the connection. Tried, not waited for inside a
        # transaction: an index built concurrently waits for every open transaction.
        while not conn.execute(
            text("SELECT pg_try_advisory_lock(hashtext('toingg migrations'))")
        ).scalar():
            conn.rollback()
            time.sleep(0.1)
        conn.commit()
        run_migrations(conn)
    engine.dispose()
