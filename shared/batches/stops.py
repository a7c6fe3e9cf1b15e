"""Batches paused or canceled, as a flag in Redis that a worker reads in microseconds right
before it dials. The database is the source of truth (a claim checks the batch's status); the
flag catches the calls already claimed: a worker checks it when it takes a claim and again right
after its wait for a slot in the dial rate."""

from shared.redis_client import get_redis

_TTL_SECONDS = 7 * 24 * 3600


def _key(batch_id: str) -> str:
    return f"toingg:batch:stopped:{batch_id}"


def mark_stopped(batch_id: str) -> None:
    get_redis().set(_key(batch_id), "1", ex=_TTL_SECONDS)


def clear(batch_id: str) -> None:
    get_redis().delete(_key(batch_id))


def is_stopped(batch_id: str | None) -> bool:
    return batch_id is not None and bool(get_redis().exists(_key(batch_id)))
