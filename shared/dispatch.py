"""What the calls' and the SMS dispatchers share: how much each hands out at a time, how a window
is dealt between the accounts in their turn, claims of one window taking turns, when a claim no
worker took counts as lost, and one tick at a time.

Both keep what is owed in the database and put on the broker only what can be sent within the
next few seconds, each task carrying its claim's attempt; a task lost with its message leaves a
claim nobody took, and that claim is handed out again once it is stale.
"""

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.models import utcnow
from shared.redis_client import get_redis

log = logging.getLogger(__name__)


def window(rate_per_second: float, burst: int = 0) -> int:
    """How many claims may be out with workers at once, not yet sent."""
    # Beat wakes a dispatcher every second, but a wake-up can come late on a busy host (the
    # tick, the broker, a free worker thread): two and a half seconds of sending keep the
    # workers fed through a late one, where one and a half ran dry and lost slots for good.
    paced = math.ceil(rate_per_second * 2.5) + burst
    return max(1, min(get_settings().DISPATCH_WINDOW, paced))


def deal(free: int, accounts: Sequence[str], serve: Callable[[str, int], int]) -> int:
    """Share `free` claims between the accounts with something owed, in the order of their turn
    (the least recently served first): an equal share each, then, in a second round, what those
    that took less than their share (nothing more owed, no free line, no credit, a failure) left
    to the others. With more accounts than claims, those first in turn take one each, and are
    last in turn at the next tick. `serve(account, take)` claims up to `take` of the account's
    and says how many it claimed. Returns how many were claimed in all."""
    handed = 0
    done: set[str] = set()
    for _ in range(2):
        serving = [account for account in accounts if account not in done]
        share = math.ceil(free / max(1, len(serving)))
        for account in serving:
            take = min(share, free)
            if take <= 0:
                break
            claimed = serve(account, take)
            if claimed < take:
                done.add(account)
            free -= claimed
            handed += claimed
    return handed


def stale_before() -> datetime:
    """A claim handed to a worker before this and still not taken lost its task (a killed
    worker, a broker restart): it is handed out again."""
    return utcnow() - timedelta(seconds=get_settings().DISPATCH_STALE_SECONDS)


def hold_window(session: Session, name: str) -> None:
    """Until this transaction ends, the `name` dispatcher's window is this transaction's: a claim
    against it in another waits here, then counts what this one left. So two ticks at once (the
    guard in Redis lost with a restart, or outlived) never claim the same free room twice; in
    one tick, claims come one after another anyway."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"toingg:{name}:window"}
    )


@contextmanager
def one_at_a_time(name: str) -> Iterator[bool]:
    """Whether this tick of the `name` dispatcher (or the settler) may run: a second at once
    would only do the first's work again (the window is held in the database, `hold_window`),
    and two settlers would share one second's work, each with a worker thread. A guard lost
    meanwhile (Redis restarted, or the tick outlived its expiry) is no failure of the tick."""
    lock = get_redis().lock(f"toingg:{name}:dispatch", timeout=30, blocking=False)
    if not lock.acquire():
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.release()
        except RedisError as exc:
            log.warning("the %s dispatcher's guard was lost during its tick: %s", name, exc)
