from datetime import datetime

from pydantic import BaseModel, Field


class ExplainedStep(BaseModel):
    at: datetime
    event: str = Field(description="the event's type (GET /api/events)")
    why: str
    rule: str | None = Field(
        description="what held it back: a calling-rules key (us-tcpa, us-fl, ...), "
        "callingHours, startAt, notAfter, or do-not-contact"
    )


class ListChange(BaseModel):
    list: str = Field(description="account (the account's own) or operators (every account's)")
    action: str = Field(description="added or removed")
    reason: str
    source: str
    at: datetime


class CallExplanation(BaseModel):
    callId: str
    phoneNumber: str
    status: str
    placed: bool = Field(description="handed to Twilio")
    placedAt: datetime | None
    verdict: str = Field(description="in one sentence: when it was placed, or why not")
    steps: list[ExplainedStep] = Field(description="the call's events, oldest first, explained")
    doNotContact: list[ListChange] = Field(
        description="every add and removal of the number on the lists that bind the account"
    )
    listedNow: bool = Field(description="a new call to the number would be refused")
