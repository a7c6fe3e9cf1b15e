"""Errors in FastAPI's own 422 shape, for problems found after the schema was read."""

from collections.abc import Sequence
from datetime import datetime

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session

from shared.billing import disputes
from shared.models import Account


def invalid_field(loc: Sequence[str | int], message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": message, "type": "value_error", "input": None}]
    )


def require_not_after_ahead(not_after: datetime | None) -> None:
    """A notAfter already past would only make calls that expire at once."""
    from shared.calling_hours import service as calling_hours

    if not_after is not None and not_after <= calling_hours.now():
        raise invalid_field(["notAfter"], f"notAfter {not_after.isoformat()} has passed")


def invalid_header(name: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("header", name), "msg": message, "type": "value_error", "input": None}]
    )


def from_validation_error(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    )


def payment_required(balance: int, price: int) -> HTTPException:
    return HTTPException(
        status.HTTP_402_PAYMENT_REQUIRED,
        {"message": "insufficient credits", "balance": balance, "price": price},
    )


def require_unblocked(session: Session, account: Account) -> None:
    """A disputed account places no new calls or SMS: 403, naming the dispute. Checked before
    the credits, which the dispute usually took back."""
    try:
        disputes.ensure_not_blocked(session, account)
    except disputes.AccountBlocked as exc:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, {"message": str(exc), "dispute": exc.dispute_id}
        ) from None


def require_credits(balance: int, price: int) -> None:
    """Refuse early what the balance cannot pay; the worker's atomic reservation is what
    guarantees a balance never goes below zero."""
    if balance < price:
        raise payment_required(balance, price)
