from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventOut(BaseModel):
    id: str = Field(description="sortable: a later event of the account has a greater id")
    type: str = Field(examples=["call.completed"])
    subjectType: str = Field(
        description="call, sms, batch, credits, dnc, refusal or webhook_endpoint"
    )
    subjectId: str = Field(description="the call's, SMS's or batch's id; the account's for credits")
    sequence: int = Field(description="1, 2, 3 ... for each subject, in the order it changed")
    createdAt: datetime
    data: dict[str, Any] = Field(description="the subject as its GET showed it after the change")


class EventPage(BaseModel):
    items: list[EventOut]
    nextCursor: str | None = Field(
        description="pass as cursor for the next (older) page; null on the last page"
    )
