"""The carrier's limits, shared by every worker on every host: one bucket per Twilio account
for call creations, one for messages.

The carrier counts requests when they arrive, and a request reaches it a little after its slot
(a thread waking up, the network, a busy host). So slots are spaced evenly at the rate, with no
burst of their own, and the configured burst is the room left for that jitter: the carrier sees
at most rate + burst in any one-second window as long as requests arrive within burst/rate
seconds of their slot (100 ms at 20/s with a burst of 2). The average rate is unchanged.
"""

from shared.config import get_settings
from shared.ratelimit.gcra import Bucket
from shared.redis_client import get_redis

_EVENLY_SPACED = 1


def dial_bucket() -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:dial:{settings.TWILIO_ACCOUNT_SID}",
        settings.DIAL_RATE_PER_SECOND,
        _EVENLY_SPACED,
    )


def sms_bucket() -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:sms:{settings.TWILIO_ACCOUNT_SID}",
        settings.SMS_RATE_PER_SECOND,
        _EVENLY_SPACED,
    )
