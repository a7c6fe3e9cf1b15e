"""Errors in FastAPI's own 422 shape, for problems found after the schema was read."""

from collections.abc import Sequence

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError


def invalid_field(loc: Sequence[str | int], message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": message, "type": "value_error", "input": None}]
    )


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


def require_credits(balance: int, price: int) -> None:
    """Refuse early what the balance cannot pay; the worker's atomic reservation is what
    guarantees a balance never goes below zero."""
    if balance < price:
        raise payment_required(balance, price)
