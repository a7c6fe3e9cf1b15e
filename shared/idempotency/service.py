"""Idempotency keys, with Stripe's semantics: a request sent again with the same key (up to 255
characters, scoped to the account) and the same body answers what the first one answered, and
does nothing else; the same key with another request is refused. Keys are kept 24 hours.

A keyed request goes through three steps:

1. `reserve`: the key is inserted in progress (INSERT ... ON CONFLICT DO NOTHING) and committed
   at once, in a short transaction of its own, so a concurrent repeat finds it.
2. `take`: in the request's own transaction, which then does the work, the key's row is locked
   (FOR UPDATE SKIP LOCKED). That lock is what "in progress" means: it lasts exactly as long as
   the work's transaction. Locked by another transaction: that request is being handled
   (KeyInUse). Done: the stored answer is replayed (or KeyReused for another request). In
   progress and unlocked: the request that reserved it ended without committing anything (it
   failed, or its process died), so nothing was done and this request does the work.
3. `remember`: the answer is written in the same transaction as the work, so what was accepted
   and what is remembered commit together. A crash before that commit leaves neither (the key
   is free again, step 2); a crash after it leaves both (a retry gets the answer), so a retry can
   never do the work twice.

Only answers whose work committed are remembered. A refusal (4xx) or failure (5xx) rolls the
work back and leaves the key free: nothing was done, so the client may fix the cause (a missing
campaign, too few credits) and retry with the same key, even with another body. Stripe stores
its 4xx answers too; here they mean "nothing happened", and storing them would only force a new
key for a request that never had an effect.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from shared.idempotency import repository
from shared.models import utcnow

MAX_KEY_LENGTH = 255
# Stripe's minimum: a key may be forgotten once it is a day old.
KEEP = timedelta(hours=24)


@dataclass(frozen=True)
class Fingerprint:
    """What a repeat must match: method, path and a hash of the canonical JSON body."""

    method: str
    path: str
    body_hash: str


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


class KeyInUse(Exception):
    """Another request with this key is being handled."""


class KeyReused(Exception):
    """The key answered another request."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"{method} {path}")
        self.method, self.path = method, path


def fingerprint(method: str, path: str, body: bytes) -> Fingerprint:
    try:  # key order and spacing do not make another request
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    # Not JSON (or nested deeper than Python's stack): such a request is refused, and nothing
    # is remembered.
    except (ValueError, RecursionError):
        canonical = body
    return Fingerprint(method, path, hashlib.sha256(canonical).hexdigest())


def reserve(session: Session, account_id: str, key: str, request: Fingerprint) -> None:
    """Step 1; the caller commits right after."""
    repository.reserve(session, account_id, key, request.method, request.path, request.body_hash)


def take(session: Session, account_id: str, key: str, request: Fingerprint) -> Replay | str:
    """Step 2: the stored answer, or the key's row id once this transaction holds it."""
    row = repository.lock(session, account_id, key)
    if row is None:
        raise KeyInUse(key)
    if row.status != "done":
        return row.id
    if (row.method, row.path, row.body_hash) != (request.method, request.path, request.body_hash):
        raise KeyReused(row.method, row.path)
    assert row.response_status is not None and row.response_body is not None
    return Replay(row.response_status, row.response_body)


def hold(session: Session, row_id: str) -> None:
    """The key's row for the rest of this transaction, once no other transaction holds it: a
    refusal's own transaction, which commits what a retry must find (the request's transaction,
    which held it, has rolled back)."""
    repository.wait_for(session, row_id)


def remember(session: Session, row_id: str, request: Fingerprint, status: int, body: str) -> None:
    """Step 3, in the transaction that did the work (and holds the row since step 2)."""
    repository.complete(
        session, row_id, request.method, request.path, request.body_hash, status, body
    )


def purge(session: Session) -> int:
    """Forget keys answered (or reserved and never answered) more than KEEP ago."""
    return repository.delete_older_than(session, utcnow() - KEEP)
