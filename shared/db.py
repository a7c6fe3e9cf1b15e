"""Engine and sessions. The boundary (a request, a task, a command) opens a session and commits;
services only flush."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, exc
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from shared.config import get_settings

# The database's failures a retry may get past (down, out of connections, locked past a
# timeout), answered 503 with Retry-After; any other is a fault no retry mends, and is 500.
UNAVAILABLE: tuple[type[exc.SQLAlchemyError], ...] = (exc.OperationalError, exc.TimeoutError)


class Base(DeclarativeBase):
    pass


def build_engine(url: str, pool_size: int = 5, max_overflow: int = 15) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return build_engine(
        settings.database_url, settings.DATABASE_POOL_SIZE, settings.DATABASE_MAX_OVERFLOW
    )


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commits on success (then sends its buffered jobs), rolls back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
