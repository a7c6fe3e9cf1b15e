"""Column helpers every table uses."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from sqlalchemy import DateTime, String, TypeDecorator
from sqlalchemy.orm import mapped_column

# The largest PostgreSQL `integer`: a whole number a client sends for such a column (or for an
# OFFSET) is refused above it, rather than failing in the database.
INT_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out: a naive datetime is refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use shared.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


IdPk = Annotated[str, mapped_column(String(36), primary_key=True, default=new_id)]
CreatedAt = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow, nullable=False)]
UpdatedAt = Annotated[
    datetime, mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
]
