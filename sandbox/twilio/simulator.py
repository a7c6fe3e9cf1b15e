"""Plays calls and messages in real time and sends their status callbacks, in order, signed."""

import asyncio
import logging
import random
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp
import httpx
import yarl
from twilio.request_validator import RequestValidator

from sandbox.twilio.config import OUTCOMES, Behaviour, pressed
from sandbox.twilio.queueing import RateQueue
from sandbox.twilio.resources import API_VERSION, Call, Message, new_sid, rfc2822

log = logging.getLogger(__name__)

FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
# Webhook requests to the application at once: enough for hundreds of calls a second.
_CONNECTIONS = 32
_WEBHOOK_ERRORS = (aiohttp.ClientError, TimeoutError)
# Twilio's own opt-out handling: a whole message of one of these words (any case, trimmed)
# stops its messages from that number to the phone (error 21610) until an opt-in word.
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
# What each StatusCallbackEvent name reports.
_EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}


def _now() -> datetime:
    return datetime.now(UTC)


class Simulator:
    def __init__(self, account_sid: str, auth_token: str, behaviour: Behaviour, seed: int | None):
        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)
        self.defaults = behaviour
        self.behaviour = behaviour.model_copy(deep=True)
        self.random = random.Random(seed)
        self.calls: dict[str, Call] = {}
        self.messages: dict[str, Message] = {}
        # (phone, one of our numbers) pairs whose phone texted an opt-out word to that number.
        self.unsubscribed: set[tuple[str, str]] = set()
        self.inbound: list[dict[str, Any]] = []
        self._ended: dict[str, asyncio.Event] = {}
        self._callbacks: dict[str, asyncio.Queue[dict[str, str] | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.call_queue = RateQueue()
        self.message_queue = RateQueue()

    async def _request(self, method: str, url: str | yarl.URL, **kwargs: Any) -> tuple[int, str]:
        """A webhook request to the application: its status code and body.

        aiohttp rather than httpx: at a few hundred webhooks a second, httpx's pool spent most
        of the sandbox's one core choosing connections, and the sandbox, busy, stamped the
        arrival of call creations late and bunched (Twilio counts a second's calls on arrival).

        The timeouts are Twilio's defaults: 5 seconds to connect, then 15 seconds for the
        application's answer, not counting the time a request waits for one of the sandbox's
        own connections (a 10-second total lost final callbacks from a busy application that
        Twilio would have delivered).
        """
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=15),
            )
        async with self._http.request(method, url, **kwargs) as response:
            return response.status, await response.text()

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.calls.clear()
        self.messages.clear()
        self.unsubscribed.clear()
        self.inbound.clear()
        self._ended.clear()
        self._callbacks.clear()
        self.call_queue.reset()
        self.message_queue.reset()
        self.behaviour = self.defaults.model_copy(deep=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- calls ---------------------------------------------------------------------------

    def start_call(self, call: Call) -> None:
        self.calls[call.sid] = call
        self._ended[call.sid] = asyncio.Event()
        call.history.append({"status": "queued", "at": time.time()})
        call.queued_seconds = self.call_queue.wait(self.behaviour.CALLS_PER_SECOND, call.created_at)
        if not self.behaviour.PLAY_CALLS:
            return
        if call.params.get("StatusCallback"):
            queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
            self._callbacks[call.sid] = queue
            self._spawn(self._deliver_call_callbacks(call, queue))
        self._spawn(self._play(call))

    def _outcome(self, call: Call) -> str:
        forced = self.behaviour.outcomes.get(call.to)
        if forced in OUTCOMES or pressed(forced) is not None:
            assert forced is not None
            return forced
        draw = self.random.random()
        b = self.behaviour
        for outcome, p in (
            ("busy", b.P_BUSY),
            ("no-answer", b.P_NO_ANSWER),
            ("failed", b.P_FAILED),
        ):
            if draw < p:
                return outcome
            draw -= p
        return "answer"

    async def _pause(self, call: Call, seconds: float | None) -> bool:
        """Wait, unless the call is ended meanwhile; True when it was."""
        try:
            await asyncio.wait_for(self._ended[call.sid].wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _set_status(self, call: Call, status: str) -> None:
        if call.status in FINAL:
            # Ended by a request while its play yielded (asyncio's wait_for yields as it
            # cancels a timed-out wait): the next pause sees the end.
            return
        call.status = status
        call.date_updated = _now()
        call.history.append({"status": status, "at": time.time()})
        event = _EVENT_OF_STATUS.get(status)
        if event is not None:
            self._callback(call, event)

    def _callback(self, call: Call, event: str) -> None:
        queue = self._callbacks.get(call.sid)
        requested = call.params.get("StatusCallbackEvent") or []
        if queue is None or (event != "completed" and event not in requested):
            return
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Called": call.to,
            "Caller": call.from_,
            "From": call.from_,
            "To": call.to,
            "Direction": "outbound-api",
            "Timestamp": rfc2822(_now()) or "",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence),
        }
        call.sequence += 1
        if event == "completed" and call.duration is not None:
            params["CallDuration"] = str(call.duration)
            params["Duration"] = str(-(-call.duration // 60))
        queue.put_nowait(params)

    def end_call(self, call: Call, status: str) -> None:
        if call.status in FINAL:
            return
        call.ended_at = _now()
        call.status = status
        call.date_updated = call.ended_at
        call.history.append({"status": status, "at": time.time()})
        self._ended[call.sid].set()
        self._callback(call, "completed")
        queue = self._callbacks.get(call.sid)
        if queue is not None:
            queue.put_nowait(None)

    async def _play(self, call: Call) -> None:
        b = self.behaviour
        timeout = float(call.params.get("Timeout") or 60)
        time_limit = float(call.params.get("TimeLimit") or 4 * 3600)
        outcome = self._outcome(call)
        if await self._pause(call, call.queued_seconds + 0.02):
            return
        if call.status not in FINAL:
            call.start_time = _now()  # dialed: Twilio's start_time is empty until then
        self._set_status(call, "initiated")
        if await self._pause(call, 0.1):
            return
        self._set_status(call, "ringing")
        ring = min(b.RING_SECONDS, timeout)
        if outcome == "hold":
            await self._pause(call, None)
            return
        if outcome in ("busy", "failed"):
            if not await self._pause(call, min(ring, 0.5)):
                self.end_call(call, outcome)
            return
        if await self._pause(call, ring):
            return
        if outcome == "no-answer":
            self.end_call(call, "no-answer")
            return
        call.answered_at = _now()
        self._set_status(call, "in-progress")
        if not await self._fetch_twiml(call):
            self.end_call(call, "completed")  # "an application error has occurred"
            return
        digit = pressed(outcome)
        if digit is not None and await self._press(call, digit):
            return
        talk = None if outcome == "answer-hold" else min(b.TALK_SECONDS, time_limit)
        if not await self._pause(call, talk):
            self.end_call(call, "completed")

    async def _fetch_twiml(self, call: Call) -> bool:
        url = call.params.get("Url")
        if not url:
            call.twiml = call.params.get("Twiml")
            return call.twiml is not None
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": "in-progress",
            "Called": call.to,
            "Caller": call.from_,
            "From": call.from_,
            "To": call.to,
            "Direction": "outbound-api",
        }
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        try:
            if (call.params.get("Method") or "POST").upper() == "GET":
                status_code, twiml = await self._request("GET", url, params=params, headers=headers)
            else:
                status_code, twiml = await self._request("POST", url, data=params, headers=headers)
            if status_code >= 400:
                call.errors.append(f"TwiML fetch from {url} failed: HTTP {status_code}")
                return False
            root = ET.fromstring(twiml)
        except (*_WEBHOOK_ERRORS, ET.ParseError) as exc:
            call.errors.append(f"TwiML fetch from {url} failed: {type(exc).__name__}: {exc}")
            return False
        if root.tag != "Response":
            call.errors.append(f"TwiML from {url} has root <{root.tag}>, not <Response>")
            return False
        call.twiml = twiml
        return True

    async def _press(self, call: Call, digit: str) -> bool:
        """The callee presses `digit` as the message starts. With a <Gather> in the call's
        TwiML, the key ends it and Twilio posts the digit to its action (relative to the
        document's URL; the document's own URL when it has none), signed, and plays the TwiML
        answered: the call ends once that has played. Without one the key does nothing.
        True when the call ended."""
        gather = ET.fromstring(call.twiml or "<Response/>").find("Gather")
        if gather is None:
            return False
        if await self._pause(call, 0.1):
            return True
        document_url = call.params.get("Url") or ""
        url = urljoin(document_url, gather.get("action") or document_url)
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": "in-progress",
            "Called": call.to,
            "Caller": call.from_,
            "From": call.from_,
            "To": call.to,
            "Direction": "outbound-api",
            "Digits": digit,
            "FinishedOnKey": "",
            "msg": "Gather End",
        }
        method = (gather.get("method") or "POST").upper()
        signed_url = str(httpx.URL(url).copy_merge_params(params)) if method == "GET" else url
        signature = self.validator.compute_signature(signed_url, {} if method == "GET" else params)
        headers = {"X-Twilio-Signature": signature}
        record: dict[str, Any] = {"url": url, "digits": digit, "status_code": None, "twiml": None}
        call.gathers.append(record)
        try:
            if method == "GET":
                exact = yarl.URL(signed_url, encoded=True)
                status_code, twiml = await self._request("GET", exact, headers=headers)
            else:
                status_code, twiml = await self._request("POST", url, data=params, headers=headers)
            record.update(status_code=status_code, twiml=twiml)
            if status_code >= 400:
                raise ValueError(f"HTTP {status_code}")
            root = ET.fromstring(twiml)
        except (*_WEBHOOK_ERRORS, ET.ParseError, ValueError) as exc:
            call.errors.append(f"<Gather> action {url} failed: {type(exc).__name__}: {exc}")
            self.end_call(call, "completed")  # "an application error has occurred"
            return True
        # What the answer says takes a moment to play; a <Hangup/> or its end ends the call.
        if not await self._pause(call, 0.2 if len(root) else 0):
            self.end_call(call, "completed")
        return True

    async def _deliver_call_callbacks(
        self, call: Call, queue: asyncio.Queue[dict[str, str] | None]
    ) -> None:
        url = call.params["StatusCallback"]
        method = (call.params.get("StatusCallbackMethod") or "POST").upper()
        while (params := await queue.get()) is not None:
            call.callbacks.append(await self._send(url, method, params))

    async def _send(
        self, url: str, method: str, params: dict[str, str], keep_answer: bool = False
    ) -> dict[str, Any]:
        signed_url = url
        if method == "GET":
            signed_url = str(httpx.URL(url).copy_merge_params(params))
        signature = self.validator.compute_signature(signed_url, {} if method == "GET" else params)
        record: dict[str, Any] = {"params": params, "status_code": None, "error": None}
        for attempt in range(3):
            try:
                headers = {"X-Twilio-Signature": signature}
                if method == "GET":
                    # As signed, byte for byte: not re-quoted on the way out.
                    exact = yarl.URL(signed_url, encoded=True)
                    status_code, _ = await self._request("GET", exact, headers=headers)
                else:
                    status_code, answer = await self._request(
                        "POST", url, data=params, headers=headers
                    )
                    if keep_answer:
                        record["answer"] = answer
                record["status_code"] = status_code
                if status_code < 500:
                    return record
            except _WEBHOOK_ERRORS as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2 * (attempt + 1))
        return record

    # --- messages ------------------------------------------------------------------------

    def start_message(self, message: Message) -> None:
        self.messages[message.sid] = message
        message.history.append({"status": "queued", "at": time.time()})
        message.queued_seconds = self.message_queue.wait(
            self.behaviour.MESSAGES_PER_SECOND, message.created_at
        )
        self._spawn(self._play_message(message))

    async def _play_message(self, message: Message) -> None:
        url = message.params.get("StatusCallback")
        steps = (
            ("sent", message.queued_seconds + 0.2),
            ("delivered", self.behaviour.SMS_DELIVERY_SECONDS),
        )
        for status, delay in steps:
            await asyncio.sleep(delay)
            message.status = status
            message.date_updated = _now()
            if status == "sent":
                message.date_sent = message.date_updated
            message.history.append({"status": status, "at": time.time()})
            if url:
                params = {
                    "AccountSid": message.account_sid,
                    "ApiVersion": API_VERSION,
                    "MessageSid": message.sid,
                    "SmsSid": message.sid,
                    "MessageStatus": status,
                    "SmsStatus": status,
                    "From": message.from_,
                    "To": message.to,
                }
                message.callbacks.append(await self._send(url, "POST", params))

    # --- a phone that texts back ---------------------------------------------------------

    async def receive_text(self, from_: str, to: str, body: str) -> dict[str, Any]:
        """A phone texts one of our numbers: Twilio keeps its own opt-out state for the pair
        (see OPT_OUT_WORDS), then posts the message, signed, to the number's incoming-message
        URL, and sends each <Message> of the TwiML answered back to the phone."""
        word = body.strip().upper()
        if word in OPT_OUT_WORDS:
            self.unsubscribed.add((from_, to))
        elif word in OPT_IN_WORDS:
            self.unsubscribed.discard((from_, to))
        sid = new_sid("SM")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
        }
        url = self.behaviour.sms_url()
        record = await self._send(url, "POST", params, keep_answer=True)
        record.update(url=url, twiml=record.pop("answer", None), replies=[])
        if record["status_code"] == 200 and record["twiml"]:
            try:
                root = ET.fromstring(record["twiml"])
            except ET.ParseError as exc:
                record["error"] = f"TwiML from {url}: ParseError: {exc}"
            else:
                record["replies"] = [m.text or "" for m in root.iter("Message")]
        self.inbound.append(record)
        return record
