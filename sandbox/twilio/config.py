"""The carrier's behaviour: environment defaults (SANDBOX_*), changeable at run time."""

import re

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.twilio.faults import Faults
from shared.config import get_settings

OUTCOMES = ("answer", "busy", "no-answer", "failed", "hold", "answer-hold")
# Answer, and press this key as the message starts (a <Gather>'s digit, posted to its action).
PRESS = re.compile(r"^press:([0-9*#])$")


def pressed(outcome: str | None) -> str | None:
    """The key a "press:N" outcome presses, or None."""
    match = PRESS.match(outcome or "")
    return match.group(1) if match else None


class Behaviour(BaseModel):
    RING_SECONDS: float = 2.0
    TALK_SECONDS: float = 5.0
    P_BUSY: float = Field(default=0.0, ge=0, le=1)
    P_NO_ANSWER: float = Field(default=0.0, ge=0, le=1)
    P_FAILED: float = Field(default=0.0, ge=0, le=1)
    LATENCY_MS: float = Field(default=0.0, ge=0)
    ERROR_RATE_429: float = Field(default=0.0, ge=0, le=1)
    ERROR_RATE_500: float = Field(default=0.0, ge=0, le=1)
    SMS_DELIVERY_SECONDS: float = 1.0
    # False: accept calls and leave them queued, with no TwiML fetch and no callbacks, so a
    # benchmark measures the dial path alone.
    PLAY_CALLS: bool = True
    # Twilio's queue over the account's rate (see queueing.py): calls and messages created
    # faster than this stay queued until their turn. 0: no queue.
    CALLS_PER_SECOND: float = Field(default=0.0, ge=0)
    MESSAGES_PER_SECOND: float = Field(default=0.0, ge=0)
    # A forced outcome per To number: answer, busy, no-answer, failed, hold (ring until
    # updated), answer-hold (stay in progress until updated), press:N (answer and press N).
    outcomes: dict[str, str] = {}
    # Where a phone's text to one of the sandbox's numbers goes, as a number's SmsUrl at
    # Twilio. None: the API's own incoming-message webhook, under PUBLIC_BASE_URL.
    SMS_URL: str | None = None
    # Call creations refused, or made and then answered 500 or left unanswered (faults.py).
    faults: Faults = Faults()

    @field_validator("outcomes")
    @classmethod
    def _known_outcomes(cls, outcomes: dict[str, str]) -> dict[str, str]:
        for number, outcome in outcomes.items():
            if outcome not in OUTCOMES and pressed(outcome) is None:
                raise ValueError(
                    f"{number}: {outcome!r} is not an outcome ({', '.join(OUTCOMES)}, press:N "
                    "with N one of 0-9, * or #)"
                )
        return outcomes

    def sms_url(self) -> str:
        return (
            self.SMS_URL or f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/api/twilio/sms-inbound"
        )


class CarrierSettings(BaseSettings, Behaviour):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    HOST: str = "127.0.0.1"
    PORT: int = 8081
    SEED: int | None = None

    def behaviour(self) -> Behaviour:
        return Behaviour.model_validate(self.model_dump(include=set(Behaviour.model_fields)))


def credentials() -> tuple[str, str]:
    settings = get_settings()
    return settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
