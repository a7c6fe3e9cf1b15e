"""Faults between the workers and the carrier, switched on through /sandbox/config:

    {"faults": {"create_429": 0.15, "create_500_after": 0.10, "create_drop_after": 0.10,
                "seed": 7}}

A share of call creations is refused with Twilio's 429 (code 20429) and creates nothing; a share
creates the call and then answers 500; a share creates the call and then closes the connection
with no answer at all. The last two are what makes a creation ambiguous: the call exists and
rings, and the client cannot tell. With `"messages": true`, message creations meet them too.
Draws come from their own generator, seeded, so a run's sequence of faults can be repeated.
"""

import asyncio
import random
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Fault = Literal["429", "500-after", "drop-after"]

_CONNECTION = "sandbox.connection"


class Faults(BaseModel):
    create_429: float = Field(default=0.0, ge=0, le=1)
    create_500_after: float = Field(default=0.0, ge=0, le=1)
    create_drop_after: float = Field(default=0.0, ge=0, le=1)
    # Message creations meet the same faults, drawn from the same generator.
    messages: bool = False
    seed: int | None = None

    @model_validator(mode="after")
    def _shares_fit(self) -> "Faults":
        if self.create_429 + self.create_500_after + self.create_drop_after > 1:
            raise ValueError("the fault shares add up to more than 1")
        return self


class FaultDraws:
    """Which fault, if any, the next call creation meets. The generator starts again from the
    seed whenever the faults are configured (and on a reset)."""

    def __init__(self, faults: Faults) -> None:
        self.restart(faults)

    def restart(self, faults: Faults) -> None:
        self._random = random.Random(faults.seed)
        self.served: Counter[Fault] = Counter()

    def next(self, faults: Faults) -> Fault | None:
        if not (faults.create_429 or faults.create_500_after or faults.create_drop_after):
            return None
        draw = self._random.random()
        shares: list[tuple[Fault, float]] = [
            ("429", faults.create_429),
            ("500-after", faults.create_500_after),
            ("drop-after", faults.create_drop_after),
        ]
        for fault, share in shares:
            if draw < share:
                self.served[fault] += 1
                return fault
            draw -= share
        return None


class _Connection:
    def __init__(self) -> None:
        self.dropped = False


def drop_connection(request: Request) -> None:
    """Close the request's connection instead of answering it (whatever the endpoint returns is
    never sent)."""
    connection = request.scope.get(_CONNECTION)
    if connection is None:
        raise RuntimeError("the carrier must be served through faults.DroppableConnections")
    connection.dropped = True


class DroppableConnections:
    """The outermost ASGI layer: it sees the server's own `send`, whose transport it closes for
    a dropped request. ASGI has no message for "close without answering", so this reaches into
    uvicorn's request cycle (its `send` is a bound method of an object holding the transport)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = scope[_CONNECTION] = _Connection()

        async def send_unless_dropped(message: Message) -> None:
            if not connection.dropped:
                await send(message)
                return
            if message["type"] == "http.response.start":
                cycle: Any = getattr(send, "__self__", None)
                transport = getattr(cycle, "transport", None)
                if transport is None:
                    raise RuntimeError("the server's send has no transport to close")
                transport.close()
                # Let the server see the connection lost before the app returns, so it does not
                # try to answer 500 for a response never started.
                for _ in range(3):
                    await asyncio.sleep(0)

        await self.app(scope, receive, send_unless_dropped)
