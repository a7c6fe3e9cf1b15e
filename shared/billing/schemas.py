from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import Count, Line


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"apikey": "tg_...", "pack": "small"}]}
    )

    apikey: Line = Field(min_length=1, description="the account's API key, as the seeds send it")
    credits: Count | None = Field(default=None, ge=1, le=1_000_000)
    pack: Line | None = Field(
        default=None, max_length=100, description="a credit pack name from CREDIT_PACKS"
    )


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


class CreditsChanged(BaseModel):
    balance: int
    disputed: bool
    entries: list[LedgerRow] = Field(description="the ledger rows of this change")


class CreditsOut(BaseModel):
    balance: int
    disputed: bool
    entries: list[LedgerRow]
    total: int
    limit: int
    offset: int
