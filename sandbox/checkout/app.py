"""The checkout stand-in's HTTP app (mounted by the sandbox server)."""

import hashlib
import hmac
import json
import secrets
import time
from html import escape
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from sandbox.checkout.forms import parse
from shared.config import DEV_STRIPE_SECRET_KEY, get_settings

API_VERSION = "2025-09-30.clover"


def _stripe_error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """Stripe-Signature as Stripe makes it: t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _event(session: dict[str, Any], event_type: str) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def create_app(public_url: str) -> FastAPI:
    """public_url: where this stand-in is reached (the pages' links point there)."""
    app = FastAPI(title="Stripe Checkout stand-in", docs_url=None, redoc_url=None)
    sessions: dict[str, dict[str, Any]] = {}
    by_idempotency_key: dict[str, str] = {}

    @app.post("/v1/checkout/sessions")
    async def create_session(
        request: Request,
        authorization: str = Header(default=""),
        idempotency_key: str | None = Header(default=None),
    ) -> JSONResponse:
        if authorization != f"Bearer {DEV_STRIPE_SECRET_KEY}":
            return _stripe_error(401, "Invalid API Key provided", "authentication_error")
        if idempotency_key and idempotency_key in by_idempotency_key:
            return JSONResponse(sessions[by_idempotency_key[idempotency_key]])
        params = parse(list((await request.form()).multi_items()))  # type: ignore[arg-type]
        if params.get("mode") != "payment":
            return _stripe_error(400, "mode: only payment is supported by the stand-in")
        items = params.get("line_items") or []
        if not items:
            return _stripe_error(400, "line_items: at least one item is required")
        amount = sum(
            int(item["quantity"]) * int(item["price_data"]["unit_amount"]) for item in items
        )
        session_id = "cs_test_" + secrets.token_hex(24)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "client_reference_id": params.get("client_reference_id"),
            "created": int(time.time()),
            "currency": items[0]["price_data"]["currency"],
            "expires_at": int(time.time()) + 86400,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"{public_url}/checkout/{session_id}",
            "line_items_summary": [
                {
                    "name": item["price_data"].get("product_data", {}).get("name", "item"),
                    "quantity": int(item["quantity"]),
                    "unit_amount": int(item["price_data"]["unit_amount"]),
                }
                for item in items
            ],
        }
        sessions[session_id] = session
        if idempotency_key:
            by_idempotency_key[idempotency_key] = session_id
        return JSONResponse(session)

    def _get(session_id: str) -> dict[str, Any]:
        if session_id not in sessions:
            raise HTTPException(404, f"no checkout session {session_id}")
        return sessions[session_id]

    @app.get("/checkout/{session_id}", response_class=HTMLResponse)
    def page(session_id: str) -> HTMLResponse:
        session = _get(session_id)
        rows = "".join(
            f"<li>{item['quantity']} x {escape(item['name'])}</li>"
            for item in session["line_items_summary"]
        )
        total = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        state = (
            "<p>Paid.</p>"
            if session["payment_status"] == "paid"
            else f'<form method="post" action="{public_url}/checkout/{session_id}/pay">'
            f'<button type="submit">Pay {total}</button></form>'
        )
        return HTMLResponse(
            "<!doctype html><title>Checkout (sandbox)</title>"
            "<h1>Toingg credits: checkout stand-in</h1>"
            f"<ul>{rows}</ul><p>Total: {total}</p>{state}"
            "<p><small>Development stand-in for Stripe Checkout: paying sends a signed "
            "checkout.session.completed event to the API's webhook.</small></p>"
        )

    @app.post("/checkout/{session_id}/pay")
    async def pay(session_id: str) -> RedirectResponse:
        session = _get(session_id)
        if session["payment_status"] != "paid":
            session.update(
                payment_status="paid",
                status="complete",
                payment_intent="pi_" + secrets.token_hex(12),
            )
        settings = get_settings()
        body = json.dumps(_event(session, "checkout.session.completed"))
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/webhook",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(body, settings.STRIPE_WEBHOOK_SECRET),
                },
            )
        if response.status_code >= 300:
            raise HTTPException(502, f"the webhook answered {response.status_code}")
        return RedirectResponse(session["success_url"] or f"/checkout/{session_id}", 303)

    @app.get("/sandbox/checkout/sessions")
    def list_sessions() -> list[dict[str, Any]]:
        return list(sessions.values())

    return app
