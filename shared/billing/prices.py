"""What calls and SMS cost in credits."""

import math

from shared.config import get_settings

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
GSM7_EXTENDED = set("^{}\\[~]|€")


def call_reservation(max_call_minutes: int) -> int:
    """Credits held while a call is live: its longest possible length."""
    return max_call_minutes * get_settings().CREDITS_PER_CALL_MINUTE


def call_cost(status: str, duration_seconds: int | None) -> int:
    """Started minutes of an answered call; unanswered calls cost nothing (nor at Twilio)."""
    if status != "completed" or not duration_seconds:
        return 0
    return math.ceil(duration_seconds / 60) * get_settings().CREDITS_PER_CALL_MINUTE


def sms_segments(body: str) -> int:
    """Segments as carriers count them: GSM-7 160/153 characters, otherwise UCS-2 70/67."""
    if all(ch in GSM7 for ch in body):
        length = sum(2 if ch in GSM7_EXTENDED else 1 for ch in body)
        single, multi = 160, 153
    else:
        length = sum(2 if ord(ch) > 0xFFFF else 1 for ch in body)
        single, multi = 70, 67
    return 1 if length <= single else math.ceil(length / multi)


def sms_cost(body: str) -> int:
    return sms_segments(body) * get_settings().CREDITS_PER_SMS_SEGMENT
