"""The carrier's limits, shared by every worker on every host: one bucket per Twilio account
for call creations, one for messages."""

from shared.config import get_settings
from shared.ratelimit.gcra import Bucket
from shared.redis_client import get_redis


def dial_bucket() -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:dial:{settings.TWILIO_ACCOUNT_SID}",
        settings.DIAL_RATE_PER_SECOND,
        settings.DIAL_BURST,
    )


def sms_bucket() -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:sms:{settings.TWILIO_ACCOUNT_SID}",
        settings.SMS_RATE_PER_SECOND,
        settings.SMS_BURST,
    )
