"""Credits: the balance and its ledger, buying more through Stripe Checkout, Stripe's webhook."""

import logging
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse

from api import strict_json
from api.deps import CurrentAccount, SessionDep, authenticate, caller_account, client_address
from api.errors import invalid_field
from api.idempotency import IdempotentRoute, idempotent
from api.paging import Limit, Offset
from shared.billing import checkout as checkout_service
from shared.billing import events as billing_events
from shared.billing import ledger, stripe_gateway
from shared.billing import views as billing_views
from shared.billing.schemas import CheckoutCreated, CheckoutRequest, CreditsOut
from shared.models import Account

router = APIRouter(tags=["billing"], route_class=IdempotentRoute)
log = logging.getLogger(__name__)


@router.get("/credits", response_model=CreditsOut, summary="The balance and the latest changes")
def get_credits(
    session: SessionDep,
    account: CurrentAccount,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CreditsOut:
    entries, total = ledger.page(session, account.id, limit, offset)
    return CreditsOut(
        balance=ledger.balance_of(session, account.id),
        disputed=account.disputed,
        entries=[billing_views.ledger_row(e) for e in entries],
        total=total,
        limit=limit,
        offset=offset,
    )


def checkout_account(
    body: CheckoutRequest, request: Request, session: SessionDep, response: Response
) -> Account:
    """Checkout is authenticated by the `apikey` in its body, as the seeds send it (a body
    read within the small limit every route but a batch's has)."""
    caller = authenticate(session, body.apikey, client_address(request))
    return caller_account(session, caller, response)


@router.post(
    "/create-checkout-session",
    response_model=CheckoutCreated,
    summary="Buy credits (Stripe)",
    dependencies=[idempotent(checkout_account)],
)
def create_checkout_session(
    body: CheckoutRequest,
    session: SessionDep,
    account: Annotated[Account, Depends(checkout_account)],
) -> CheckoutCreated:
    try:
        credits = checkout_service.credits_for(body.credits, body.pack)
    except checkout_service.UnknownPack:
        raise invalid_field(["pack"], f"unknown credit pack {body.pack!r}") from None
    try:
        checkout, url = checkout_service.start(session, account, credits)
    except stripe_gateway.StripeUnavailable:
        # The library's text names hosts, paths and errors of the operator's network: the
        # customer learns only what to do, the log has why.
        log.exception("checkout: Stripe is unavailable")
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, "payments are unavailable; retry shortly"
        ) from None
    return CheckoutCreated(
        sessionId=checkout.stripe_session_id or "",
        url=url,
        checkoutId=checkout.id,
        credits=checkout.credits,
        amountCents=checkout.amount_cents,
        currency=checkout.currency,
    )


async def verified_stripe_event(request: Request) -> dict[str, Any]:
    payload = await request.body()
    try:
        stripe_gateway.verify_signature(payload, request.headers.get("Stripe-Signature"))
    except ValueError:
        raise _not_an_event("it is not UTF-8 text") from None
    except stripe.SignatureVerificationError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"invalid Stripe-Signature: {exc.user_message or exc}"
        ) from None
    # Kept exactly as Stripe sent it, once it is known to be an event the database can keep.
    try:
        event = strict_json.loads(payload)
    except strict_json.Refused as exc:
        raise _not_an_event(str(exc)) from None
    except RecursionError:
        raise _not_an_event("the JSON body is nested too deeply") from None
    except ValueError:
        raise _not_an_event("it is not JSON") from None
    problem = billing_events.event_problem(event)
    if problem is not None:
        raise _not_an_event(problem)
    return dict(event)


def _not_an_event(why: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"the body is not a Stripe event: {why}")


@router.post("/webhook", summary="Stripe's events (Stripe-Signature checked)")
def stripe_webhook(
    event: Annotated[dict[str, Any], Depends(verified_stripe_event)], session: SessionDep
) -> dict[str, Any]:
    new = billing_events.store(session, event)
    return {"received": True, "duplicate": not new}


@router.get("/checkout/done", include_in_schema=False)
def checkout_done(status: str = "paid") -> HTMLResponse:
    text = (
        "Payment received: your credits arrive in a moment."
        if status == "paid"
        else ("Checkout canceled: nothing was charged.")
    )
    return HTMLResponse(f"<!doctype html><title>Toingg</title><p>{text}</p>")
