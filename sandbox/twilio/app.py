"""The carrier's HTTP app: Twilio's REST endpoints, and a control API for tests under /sandbox."""

import asyncio
import base64
import binascii
import re
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from sandbox.twilio import faults, filters
from sandbox.twilio.config import Behaviour, CarrierSettings, credentials
from sandbox.twilio.resources import API_VERSION, Call, Message, new_sid, twilio_error
from sandbox.twilio.simulator import FINAL, Simulator

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's magic test numbers for To, and the errors they produce.
MAGIC_CALL_ERRORS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS or voice."),
    "+15005550003": (21408, "Permission to call +15005550003 has not been enabled."),
    "+15005550004": (21610, "The 'To' number +15005550004 is blocked for your account."),
}
MAGIC_SMS_ERRORS = {
    **MAGIC_CALL_ERRORS,
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


# Twilio's answer to a message for a phone that texted STOP to its sender, until it texts START.
UNSUBSCRIBED = (21610, "Attempt to send to unsubscribed recipient")


class IncomingText(BaseModel):
    """A text from a phone to one of the sandbox's numbers."""

    from_: str = Field(alias="from", pattern=E164.pattern, description="the phone, in E.164")
    to: str = Field(pattern=E164.pattern, description="the number texted, in E.164")
    body: str = Field(max_length=1600)


def create_app(settings: CarrierSettings | None = None) -> FastAPI:
    settings = settings or CarrierSettings()
    account_sid, auth_token = credentials()
    sim = Simulator(account_sid, auth_token, settings.behaviour(), settings.SEED)
    app = FastAPI(title="Sandbox carrier (Twilio 2010-04-01 compatible)", docs_url=None)
    app.state.simulator = sim
    fault_draws = faults.FaultDraws(sim.behaviour.faults)
    base = f"/{API_VERSION}/Accounts/{{AccountSid}}"

    def authorized(request: Request, path_sid: str) -> JSONResponse | None:
        header = request.headers.get("Authorization", "")
        try:
            user, _, password = (
                base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if (user, password) != (account_sid, auth_token):
            return twilio_error(401, 20003, "Authenticate")
        if path_sid != account_sid:
            return twilio_error(
                404, 20404, f"The requested resource /Accounts/{path_sid} was not found"
            )
        return None

    async def form(request: Request) -> dict[str, Any]:
        data = await request.form()
        params: dict[str, Any] = {}
        for key, value in data.multi_items():
            if key == "StatusCallbackEvent":
                params.setdefault(key, []).extend(str(value).split())
            else:
                params[key] = str(value)
        return params

    async def latency() -> None:
        if sim.behaviour.LATENCY_MS:
            await asyncio.sleep(sim.behaviour.LATENCY_MS / 1000)

    def injected_error() -> JSONResponse | None:
        draw = sim.random.random()
        if draw < sim.behaviour.ERROR_RATE_429:
            return twilio_error(429, 20429, "Too Many Requests")
        if draw < sim.behaviour.ERROR_RATE_429 + sim.behaviour.ERROR_RATE_500:
            return twilio_error(500, 20500, "Internal Server Error")
        return None

    @app.post(f"{base}/Calls.json")
    async def create_call(AccountSid: str, request: Request) -> JSONResponse:
        received_at = time.time()  # Twilio counts its calls per second on arrival
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        params = await form(request)
        to, from_ = params.get("To"), params.get("From")
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not from_:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not any(params.get(k) for k in ("Url", "Twiml", "ApplicationSid")):
            return twilio_error(400, 21205, "Url parameter is required.")
        if to in MAGIC_CALL_ERRORS:
            return twilio_error(400, *MAGIC_CALL_ERRORS[to])
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if (error := injected_error()) is not None:
            return error
        fault = fault_draws.next(sim.behaviour.faults)
        if fault == "429":
            return twilio_error(429, 20429, "Too Many Requests")
        call = Call(new_sid("CA"), account_sid, to, from_, params, created_at=received_at)
        sim.start_call(call)
        if fault == "500-after":
            return twilio_error(500, 20500, "Internal Server Error")
        if fault == "drop-after":
            faults.drop_connection(request)
        return JSONResponse(call.resource(), status_code=201)

    def find_call(sid: str) -> Call | JSONResponse:
        call = sim.calls.get(sid)
        if call is None:
            return twilio_error(
                404,
                20404,
                f"The requested resource /Accounts/{account_sid}/Calls/{sid}.json was not found",
            )
        return call

    @app.get(f"{base}/Calls/{{Sid}}.json")
    async def fetch_call(AccountSid: str, Sid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        found = find_call(Sid)
        return found if isinstance(found, JSONResponse) else JSONResponse(found.resource())

    @app.post(f"{base}/Calls/{{Sid}}.json")
    async def update_call(AccountSid: str, Sid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        found = find_call(Sid)
        if isinstance(found, JSONResponse):
            return found
        params = await form(request)
        if found.status in FINAL:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        status = params.get("Status")
        if status not in (None, "canceled", "completed"):
            return twilio_error(400, 21218, f"Invalid Status {status}: use canceled or completed")
        if status == "canceled" and found.status in ("queued", "initiated", "ringing"):
            sim.end_call(found, "canceled")
        elif status == "completed":
            sim.end_call(found, "completed" if found.status == "in-progress" else "canceled")
        for key in ("Url", "Twiml"):
            if key in params:
                found.params[key] = params[key]
        return JSONResponse(found.resource())

    def page(request: Request, items: list[dict[str, Any]], key: str, path: str) -> dict[str, Any]:
        query = request.query_params
        size = max(1, min(int(query.get("PageSize", 50)), 1000))
        number = int(query.get("Page", 0))
        chunk = items[number * size : (number + 1) * size]
        kept = [
            (k, v) for k, v in query.multi_items() if k not in ("Page", "PageSize", "PageToken")
        ]

        def uri(n: int) -> str:
            return f"{path}?{urlencode([('PageSize', size), ('Page', n), *kept])}"

        more = (number + 1) * size < len(items)
        return {
            key: chunk,
            "page": number,
            "page_size": size,
            "start": number * size,
            "end": number * size + max(len(chunk) - 1, 0),
            "uri": uri(number),
            "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1) if more else None,
            "previous_page_uri": uri(number - 1) if number > 0 else None,
        }

    @app.get(f"{base}/Calls.json")
    async def list_calls(AccountSid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        q = request.query_params
        calls = sorted(sim.calls.values(), key=lambda c: c.created_at, reverse=True)
        if q.get("To"):
            calls = [c for c in calls if c.to == q["To"]]
        if q.get("From"):
            calls = [c for c in calls if c.from_ == q["From"]]
        if q.get("Status"):
            calls = [c for c in calls if c.status == q["Status"]]
        try:
            calls = filters.by_day(calls, q, "StartTime", lambda c: c.start_time)
            calls = filters.by_day(calls, q, "EndTime", lambda c: c.end_time)
        except filters.InvalidFilter as exc:
            return twilio_error(400, 20001, str(exc))
        path = f"/{API_VERSION}/Accounts/{account_sid}/Calls.json"
        return JSONResponse(page(request, [c.resource() for c in calls], "calls", path))

    @app.post(f"{base}/Messages.json")
    async def create_message(AccountSid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        params = await form(request)
        to = params.get("To")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not (params.get("Body") or params.get("MediaUrl")):
            return twilio_error(400, 21602, "Message body is required.")
        if to in MAGIC_SMS_ERRORS:
            return twilio_error(400, *MAGIC_SMS_ERRORS[to])
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if (to, params.get("From", "")) in sim.unsubscribed:
            return twilio_error(400, *UNSUBSCRIBED)
        if (error := injected_error()) is not None:
            return error
        fault = fault_draws.next(sim.behaviour.faults) if sim.behaviour.faults.messages else None
        if fault == "429":
            return twilio_error(429, 20429, "Too Many Requests")
        message = Message(
            new_sid("SM"), account_sid, to, params.get("From", ""), params.get("Body", ""),
            params, created_at=time.time(),
        )  # fmt: skip
        sim.start_message(message)
        if fault == "500-after":
            return twilio_error(500, 20500, "Internal Server Error")
        if fault == "drop-after":
            faults.drop_connection(request)
        return JSONResponse(message.resource(), status_code=201)

    @app.get(f"{base}/Messages/{{Sid}}.json")
    async def fetch_message(AccountSid: str, Sid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        message = sim.messages.get(Sid)
        if message is None:
            return twilio_error(
                404, 20404, f"The requested resource Messages/{Sid}.json was not found"
            )
        return JSONResponse(message.resource())

    @app.get(f"{base}/Messages.json")
    async def list_messages(AccountSid: str, request: Request) -> JSONResponse:
        await latency()
        if (denied := authorized(request, AccountSid)) is not None:
            return denied
        q = request.query_params
        messages = sorted(sim.messages.values(), key=lambda m: m.created_at, reverse=True)
        if q.get("To"):
            messages = [m for m in messages if m.to == q["To"]]
        if q.get("From"):
            messages = [m for m in messages if m.from_ == q["From"]]
        try:
            messages = filters.by_day(messages, q, "DateSent", lambda m: m.date_sent)
        except filters.InvalidFilter as exc:
            return twilio_error(400, 20001, str(exc))
        path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        return JSONResponse(page(request, [m.resource() for m in messages], "messages", path))

    # --- control API -------------------------------------------------------------------

    @app.get("/sandbox/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sandbox/calls")
    def control_calls() -> list[dict[str, Any]]:
        return [c.control_view() for c in sorted(sim.calls.values(), key=lambda c: c.created_at)]

    @app.get("/sandbox/messages")
    def control_messages() -> list[dict[str, Any]]:
        return [m.control_view() for m in sim.messages.values()]

    @app.post("/sandbox/sms/inbound")
    async def text_in(text: IncomingText) -> dict[str, Any]:
        """The phone `from` texts `to`: sent to the API as Twilio would (see
        Simulator.receive_text); the answer says how the API answered and what it replied."""
        return await sim.receive_text(text.from_, text.to, text.body)

    @app.get("/sandbox/sms/inbound")
    def texts_in() -> list[dict[str, Any]]:
        return sim.inbound

    @app.get("/sandbox/config")
    def get_config() -> Behaviour:
        return sim.behaviour

    @app.post("/sandbox/config")
    def set_config(changes: dict[str, Any]) -> Behaviour:
        merged = {**sim.behaviour.model_dump(), **changes}
        if "outcomes" in changes:
            merged["outcomes"] = {**sim.behaviour.outcomes, **changes["outcomes"]}
        try:
            sim.behaviour = Behaviour.model_validate(merged)
        except ValidationError as exc:  # a 422 naming the setting, not a 500
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_context=False)]
            ) from None
        if "faults" in changes:
            fault_draws.restart(sim.behaviour.faults)
        return sim.behaviour

    @app.get("/sandbox/faults")
    def served_faults() -> dict[str, int]:
        """How many call creations met each fault since the faults were last configured."""
        return dict(fault_draws.served)

    @app.post("/sandbox/reset")
    def reset() -> dict[str, str]:
        sim.reset()
        fault_draws.restart(sim.behaviour.faults)
        return {"status": "reset"}

    return app
