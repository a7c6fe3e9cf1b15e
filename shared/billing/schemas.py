from datetime import datetime

from pydantic import BaseModel, Field


class CheckoutRequest(BaseModel):
    apikey: str = Field(min_length=1, description="the account's API key, as the seeds send it")
    credits: int | None = Field(default=None, ge=1, le=1_000_000)
    pack: str | None = Field(default=None, description="a credit pack name from CREDIT_PACKS")


class CheckoutCreated(BaseModel):
    sessionId: str
    url: str
    checkoutId: str
    credits: int
    amountCents: int
    currency: str


class LedgerRow(BaseModel):
    id: str
    delta: int
    balanceAfter: int
    reason: str
    subjectType: str
    subjectId: str
    note: str
    createdAt: datetime


class CreditsOut(BaseModel):
    balance: int
    disputed: bool
    entries: list[LedgerRow]
    total: int
    limit: int
    offset: int
