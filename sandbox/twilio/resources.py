"""Twilio's JSON shapes for calls, messages, list pages and errors."""

import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi.responses import JSONResponse

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment, usegmt=True) if moment else None


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    params: dict[str, Any]
    created_at: float  # unix seconds, when the create request arrived
    status: str = "queued"
    queued_seconds: float = 0.0  # held in Twilio's queue over the account's rate
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None  # whatever the outcome; Twilio shows it as end_time or not
    history: list[dict[str, Any]] = field(default_factory=list)
    twiml: str | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Keys the callee pressed into a <Gather>: where each was posted, and the TwiML answered.
    gathers: list[dict[str, Any]] = field(default_factory=list)
    sequence: int = 0

    @property
    def duration(self) -> int | None:
        """Seconds from answer to end (0 unanswered), once ended: what the final status
        callback's CallDuration says."""
        if self.ended_at is None:
            return None
        if self.answered_at is None:
            return 0
        return math.ceil((self.ended_at - self.answered_at).total_seconds())

    @property
    def end_time(self) -> datetime | None:
        """As Twilio's description says: "Empty if the call did not complete successfully",
        so a busy, unanswered, failed or canceled call has none (nor is it listed by EndTime)."""
        return self.ended_at if self.status == "completed" else None

    @property
    def listed_duration(self) -> int | None:
        """The resource's duration: "empty for busy, failed, unanswered, or ongoing calls"."""
        return None if self.status in ("busy", "failed", "no-answer") else self.duration

    def resource(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": None if self.listed_duration is None else str(self.listed_duration),
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": str(round(self.queued_seconds * 1000)),
            "trunk_sid": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "events": f"{uri}/Events.json",
            },
        }

    def control_view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "created_at": self.created_at,
            "duration": self.duration,
            "history": self.history,
            "twiml": self.twiml,
            "params": self.params,
            "callbacks": self.callbacks,
            "errors": self.errors,
            "gathers": self.gathers,
        }


GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def segments(body: str) -> int:
    if all(ch in GSM7 for ch in body):
        length = sum(2 if ch in "^{}\\[~]|€" else 1 for ch in body)
        return 1 if length <= 160 else math.ceil(length / 153)
    return 1 if len(body) <= 70 else math.ceil(len(body) / 67)


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    params: dict[str, Any]
    created_at: float
    status: str = "queued"
    queued_seconds: float = 0.0  # held in Twilio's queue over the sender's rate
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_sent: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def resource(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "body": self.body,
            "num_segments": str(segments(self.body)),
            "num_media": "0",
            "direction": "outbound-api",
            "from": self.from_,
            "to": self.to,
            "status": self.status,
            "messaging_service_sid": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "date_sent": rfc2822(self.date_sent),
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "api_version": API_VERSION,
            "uri": f"{uri}.json",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        }

    def control_view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": self.status,
            "created_at": self.created_at,
            "history": self.history,
            "params": self.params,
            "callbacks": self.callbacks,
        }
