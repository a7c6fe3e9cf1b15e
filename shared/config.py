"""Settings for every process, read from flat UPPER_CASE environment variables."""

import sys
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development defaults: valid-looking Twilio credentials that only the sandbox carrier accepts,
# and a webhook secret that only the development checkout stand-in signs with.
DEV_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_development"
# The development checkout stand-in accepts this key; real Stripe never would.
DEV_STRIPE_SECRET_KEY = "sk_test_sandbox"
DEV_FLOWER_BASIC_AUTH = "admin:admin"
# Twilio's number for test credentials, which the sandbox also speaks for: no live account
# calls from it.
DEV_TWILIO_FROM_NUMBER = "+15005550006"
TWILIO_DEFAULT_API_BASE = "https://api.twilio.com"
STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"
# Between the end of the longest create request a claim may send and the first moment reconcile
# may look for its call: room for the clocks of two hosts, and for the watchdog to wake.
DIAL_MARGIN_SECONDS = 0.5
# The one PostgreSQL driver the product ships.
DATABASE_URL_SCHEME = "postgresql+psycopg://"


def _database_url_problem(url: str) -> str | None:
    if url.startswith(DATABASE_URL_SCHEME):
        return None
    scheme = url.partition("://")[0]
    if scheme.startswith("postgresql+"):
        return (
            f"DATABASE_URL names the driver {scheme.removeprefix('postgresql+')!r}, which is not "
            f"installed: use postgresql:// or {DATABASE_URL_SCHEME}"
        )
    return f"DATABASE_URL must be a PostgreSQL URL ({DATABASE_URL_SCHEME}...)"


def _user_passwords(credentials: str) -> bool:
    """Whether Flower's credentials are each a user and a password, as Flower reads them."""
    return all(
        user and password
        for user, _, password in (entry.partition(":") for entry in credentials.split(","))
    )


class Settings(BaseSettings):
    # A refusal never shows what was read: pydantic's own message would show settings' values,
    # a password among them, to whatever log the failing process writes to.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    ENVIRONMENT: Literal["development", "production"] = "development"

    # Unset: the development launcher starts an embedded PostgreSQL (or finds the one it
    # started) and sets this for its children; the tests do the same.
    DATABASE_URL: str | None = None
    # Connections per process (PostgreSQL): size + overflow should cover a worker's threads,
    # and every process's together must stay under the server's max_connections. The size is
    # what stays open when returned: with 5 of 20, a worker's webhook senders (a short
    # transaction after each request) opened and closed connections all the time, PostgreSQL
    # starting a backend for each (benchmarks.webhook_lag: 1,004 sessions over its 3,000
    # deliveries, 45 with 20).
    DATABASE_POOL_SIZE: int = 20
    DATABASE_MAX_OVERFLOW: int = 0
    # Unset: the development launcher starts an embedded redis-server and sets this for its
    # children; the tests do the same.
    REDIS_URL: str | None = None
    # Every Redis command and connect of every client (the shared state's and the broker's)
    # gives up after this: a dead connection must not hold a worker for ever.
    REDIS_SOCKET_TIMEOUT_SECONDS: float = 5.0

    TWILIO_ACCOUNT_SID: str = DEV_TWILIO_ACCOUNT_SID
    TWILIO_AUTH_TOKEN: str = DEV_TWILIO_AUTH_TOKEN
    TWILIO_FROM_NUMBER: str = DEV_TWILIO_FROM_NUMBER
    # Whether every account may call and text from TWILIO_FROM_NUMBER, besides its own caller
    # IDs. Unset: yes in development (the sandbox's number), no in production, where a number
    # is one customer's (see `platform_from_number_shared`).
    PLATFORM_FROM_NUMBER_SHARED: bool | None = None
    TWILIO_API_BASE: str = TWILIO_DEFAULT_API_BASE
    # Production sends Twilio's requests to Twilio's own host only, or to the host named here
    # (a regional edge, a proxy).
    TWILIO_API_ALLOWED_HOST: str | None = None
    # Each phase of a request to Twilio (connect, each read); a call creation also ends within
    # it as a whole (see shared.telephony.deadline).
    TWILIO_TIMEOUT_SECONDS: float = 10.0
    CALL_RING_TIMEOUT_SECONDS: int = 30
    MEDIA_STREAM_URL: str | None = None
    DEFAULT_REGION: str = "US"
    # Opt-outs: the answer to a text of HELP, and what a call with an opt-out digit says first
    # ({digit}: the key, spoken) and once the key is pressed.
    HELP_TEXT: str = (
        "Toingg: automated calls and texts. Reply STOP to opt out, START to opt back in."
    )
    OPT_OUT_PROMPT: str = "To stop these calls, press {digit} at any time."
    OPT_OUT_CONFIRMATION: str = "You will not be called again. Goodbye."

    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    # The TLS proxy in front of the API, whose X-Forwarded-For and X-Forwarded-Proto are
    # believed (uvicorn's --forwarded-allow-ips: addresses or networks, comma-separated, or
    # "*"). Unset: none, and the client address is the connection's own.
    FORWARDED_ALLOW_IPS: str = ""

    STRIPE_SECRET_KEY: str | None = None
    STRIPE_WEBHOOK_SECRET: str = DEV_STRIPE_WEBHOOK_SECRET
    STRIPE_API_BASE: str | None = None
    # The same for Stripe's requests.
    STRIPE_API_ALLOWED_HOST: str | None = None
    # Production refuses a test-mode key (sk_test_, rk_test_): Stripe's test cards would buy
    # credits that place real calls. A staging stack on real Twilio may allow it here.
    STRIPE_TEST_MODE_ALLOWED: bool = False

    # A Stripe event that cannot be applied is tried again after 1, 2, 4 ... minutes (at most
    # 6 hours apart) and given up (dead) after this many tries: about three days, as long as
    # Stripe itself retries a webhook delivery.
    STRIPE_EVENT_MAX_ATTEMPTS: int = 20

    # Twilio's raw callback parameters, SMS bodies and Stripe event payloads are emptied once
    # this many days old (the records themselves stay: see shared.retention).
    RETENTION_DAYS: int = Field(default=90, ge=1)

    FLOWER_BASIC_AUTH: str = DEV_FLOWER_BASIC_AUTH

    # Prices in credits, and what a credit costs in Checkout.
    CREDITS_PER_CALL_MINUTE: int = 1
    CREDITS_PER_SMS_SEGMENT: int = 1
    CREDIT_PRICE_CENTS: int = 10
    CURRENCY: str = "usd"
    CREDIT_PACKS: dict[str, int] = {"small": 100, "medium": 500, "large": 2000}
    DEFAULT_CHECKOUT_CREDITS: int = 100
    CHECKOUT_SUCCESS_URL: str | None = None
    CHECKOUT_CANCEL_URL: str | None = None

    # Twilio places an account's calls at a fixed rate (1 per second unless raised) and queues
    # the rest; these limits hold across every worker and host (leaky buckets in Redis). Slots
    # are evenly spaced; DIAL_BURST is how many more than the rate the carrier may count in one
    # second, the room left for requests that arrive a little after their slot.
    DIAL_RATE_PER_SECOND: float = 1.0
    DIAL_BURST: int = 1
    SMS_RATE_PER_SECOND: float = 1.0
    # Each API key's leaky bucket (accounts may override), and each account's lines: a line
    # is held from the claim to the final status, so R calls a second of L seconds each need
    # about R * (L + 3) lines (20/s of the sandbox's 7 s calls: about 200).
    API_RATE_PER_SECOND: float = 10.0
    API_BURST: int = 20
    MAX_CONCURRENT_CALLS: int = 300
    # A request's body must arrive whole within this many seconds (408 after), so bodies that
    # trickle in cannot hold the API's connections.
    REQUEST_BODY_SECONDS: float = Field(default=30, gt=0)
    # Lookups of keys not seen valid lately a client address may make: a burst, then this many
    # a second.
    API_BAD_KEY_RATE_PER_SECOND: float = 1.0
    API_BAD_KEY_BURST: int = 20
    # A worker waits at most this long for its slot; longer, the task is retried later.
    RATE_MAX_WAIT_SECONDS: float = 5.0

    # How long a claimed call's task may go untaken before it is sent again, and a call a worker
    # took may go without a SID before Twilio is asked about it.
    DISPATCH_STALE_SECONDS: int = 60
    DIAL_AMBIGUOUS_SECONDS: int = 30
    DISPATCH_WINDOW: int = 200

    # A campaign's calling hours when it names none, in each recipient's local time:
    # "08:00-21:00" every day, or "09:00-20:00 mon,tue,wed,thu,fri". The law's rules
    # (shared/calling_hours/rules_table.py) narrow them by the number's country and state;
    # CALLING_RULES=false leaves only the campaign's hours, for calls the law's hours do not
    # cover (calls that are not solicitations, and test environments).
    CALLING_HOURS: str = "08:00-21:00"
    CALLING_RULES: bool = True
    # Calls placed to one number per account in any 24 hours; a state's rule may allow fewer.
    MAX_CALLS_PER_NUMBER_PER_DAY: int = Field(default=3, ge=1)
    # How long a hang-up may go without Twilio confirming the call over before the sweeper sends
    # it again (its message was lost, or its task gave up).
    HANGUP_RESEND_SECONDS: int = 10

    # Customers' webhook endpoints (shared.webhooks). Unset, private URLs (loopback, private
    # networks, link-local) are allowed in development, so a local receiver works with
    # `make run`, and refused in production, where an endpoint is a way into our network.
    WEBHOOK_ALLOW_PRIVATE_URLS: bool | None = None
    # Each delivery attempt ends within this (connect, send, answer): no answer is a failure. A
    # worker lost mid-attempt leaves its delivery due again 5 s after this.
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # Requests in flight to one endpoint at once, across every worker: a slow endpoint holds
    # no more senders than this.
    WEBHOOK_ENDPOINT_CONCURRENCY: int = Field(default=24, ge=1)
    # The waits between a delivery's attempts (each with jitter); the last repeats until the
    # window since its first attempt is over, when the delivery is given up.
    WEBHOOK_RETRY_SCHEDULE_SECONDS: list[float] = [5, 300, 1800, 7200, 18000, 36000]
    WEBHOOK_RETRY_WINDOW_SECONDS: float = Field(default=3 * 24 * 3600, gt=0)
    # How long a rotated-out signing secret keeps signing beside the new one.
    WEBHOOK_SECRET_OVERLAP_SECONDS: float = Field(default=24 * 3600, ge=0)
    # Distinct `webhook` URLs of calls and batches an account may have (each an endpoint, kept
    # until deleted, retried for the window when unreachable); a new one past it is refused.
    WEBHOOK_PER_CALL_URLS_MAX: int = Field(default=1000, ge=1)

    @field_validator("CALLING_HOURS")
    @classmethod
    def _calling_hours(cls, value: str) -> str:
        from shared.calling_hours.hours import from_setting

        from_setting(value)
        return value

    @property
    def dial_fence_seconds(self) -> float:
        """How old a worker's claim may be when it sends the call's create request: that request
        ends within TWILIO_TIMEOUT_SECONDS, so it has ended, answered or cut, a margin before
        reconcile may ask Twilio about the call (DIAL_AMBIGUOUS_SECONDS after the claim)."""
        return self.DIAL_AMBIGUOUS_SECONDS - self.TWILIO_TIMEOUT_SECONDS - DIAL_MARGIN_SECONDS

    @field_validator("DATABASE_URL")
    @classmethod
    def _with_the_shipped_driver(cls, url: str | None) -> str | None:
        # Hosting platforms write postgres://, and to SQLAlchemy postgresql:// means psycopg2,
        # which is not installed: both mean PostgreSQL through psycopg here.
        for scheme in ("postgres://", "postgresql://"):
            if url is not None and url.startswith(scheme):
                return DATABASE_URL_SCHEME + url.removeprefix(scheme)
        return url

    @model_validator(mode="after")
    def _refuse_what_cannot_run(self) -> "Settings":
        # Every problem at once, so whoever starts the process fixes them in one go.
        problems = self._problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self) -> list[str]:
        problems = []
        # A worker waits up to RATE_MAX_WAIT_SECONDS for its slot after taking its claim, and
        # must then still be young enough to send it.
        floor = self.RATE_MAX_WAIT_SECONDS + self.TWILIO_TIMEOUT_SECONDS + DIAL_MARGIN_SECONDS
        if floor >= self.DIAL_AMBIGUOUS_SECONDS:
            problems.append(
                f"DIAL_AMBIGUOUS_SECONDS must exceed RATE_MAX_WAIT_SECONDS + "
                f"TWILIO_TIMEOUT_SECONDS + {DIAL_MARGIN_SECONDS:g} ({floor:g})"
            )
        schedule = self.WEBHOOK_RETRY_SCHEDULE_SECONDS
        if not schedule or any(wait <= 0 for wait in schedule):
            problems.append("WEBHOOK_RETRY_SCHEDULE_SECONDS must be one or more waits above 0")
        # One engine everywhere: the locking and conflict handling is written for PostgreSQL.
        problem = None if self.DATABASE_URL is None else _database_url_problem(self.DATABASE_URL)
        if problem:
            problems.append(problem)
        if self.ENVIRONMENT == "production":
            problems.extend(self._development_parts())
        return problems

    def _development_parts(self) -> list[str]:
        """What production must not run on: the development secrets and embedded servers, a
        carrier or payment provider that is not Twilio's or Stripe's own (the sandbox accepts
        any call and signs payments with whatever secret it is given), and plain HTTP."""
        # An empty secret is no secret: an empty Twilio token signs callbacks anyone can sign,
        # and empty Flower credentials leave Flower open.
        placeholders = {
            "TWILIO_ACCOUNT_SID": (self.TWILIO_ACCOUNT_SID, DEV_TWILIO_ACCOUNT_SID),
            "TWILIO_AUTH_TOKEN": (self.TWILIO_AUTH_TOKEN, DEV_TWILIO_AUTH_TOKEN),
            "TWILIO_FROM_NUMBER": (self.TWILIO_FROM_NUMBER, DEV_TWILIO_FROM_NUMBER),
            "STRIPE_WEBHOOK_SECRET": (self.STRIPE_WEBHOOK_SECRET, DEV_STRIPE_WEBHOOK_SECRET),
            "STRIPE_SECRET_KEY": (self.STRIPE_SECRET_KEY, DEV_STRIPE_SECRET_KEY),
            "FLOWER_BASIC_AUTH": (self.FLOWER_BASIC_AUTH, DEV_FLOWER_BASIC_AUTH),
            "DATABASE_URL": (self.DATABASE_URL, None),
            "REDIS_URL": (self.REDIS_URL, None),
        }
        bad = [
            name
            for name, (value, development) in placeholders.items()
            if value is None or not value.strip() or value == development
        ]
        problems = [f"production needs real values for: {', '.join(bad)}"] if bad else []
        if "FLOWER_BASIC_AUTH" not in bad and not _user_passwords(self.FLOWER_BASIC_AUTH):
            # Flower would start without the credentials it cannot read: open to anyone.
            problems.append(
                "FLOWER_BASIC_AUTH must be user:password (or several, comma-separated), "
                "each with a user and a password"
            )
        for name, base, own, allowed_name, allowed in (
            ("TWILIO_API_BASE", self.TWILIO_API_BASE, TWILIO_DEFAULT_API_BASE,
             "TWILIO_API_ALLOWED_HOST", self.TWILIO_API_ALLOWED_HOST),
            ("STRIPE_API_BASE", self.STRIPE_API_BASE or STRIPE_DEFAULT_API_BASE,
             STRIPE_DEFAULT_API_BASE, "STRIPE_API_ALLOWED_HOST", self.STRIPE_API_ALLOWED_HOST),
        ):  # fmt: skip
            url = urlsplit(base)
            hosts = {urlsplit(own).hostname, allowed}
            if url.scheme != "https" or url.hostname not in hosts:
                problems.append(
                    f"{name} must be {own} in production, not {url.scheme}://{url.hostname} "
                    f"(an HTTPS regional edge or proxy is allowed when {allowed_name} names "
                    "its host)"
                )
        key = self.STRIPE_SECRET_KEY or ""
        test_mode = key.startswith(("sk_test_", "rk_test_")) and key != DEV_STRIPE_SECRET_KEY
        if test_mode and not self.STRIPE_TEST_MODE_ALLOWED:
            problems.append(
                "STRIPE_SECRET_KEY is a test-mode key: production takes payments with a live "
                "key (sk_live_ or rk_live_), or set STRIPE_TEST_MODE_ALLOWED=true"
            )
        if urlsplit(self.PUBLIC_BASE_URL).scheme != "https":
            problems.append(
                "PUBLIC_BASE_URL must be an https:// URL in production: Twilio and Stripe send "
                "signed requests and customers' checkouts there"
            )
        return problems

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL is None:
            raise RuntimeError(
                "DATABASE_URL is not set: start the stack with `toingg run`, which starts an "
                "embedded PostgreSQL, or point DATABASE_URL at a PostgreSQL server"
            )
        return self.DATABASE_URL

    @property
    def redis_url(self) -> str:
        if self.REDIS_URL is None:
            raise RuntimeError(
                "REDIS_URL is not set: start the stack with `toingg run`, which starts an "
                "embedded Redis, or point REDIS_URL at a Redis server"
            )
        return self.REDIS_URL

    @property
    def platform_from_number_shared(self) -> bool:
        if self.PLATFORM_FROM_NUMBER_SHARED is None:
            return self.ENVIRONMENT == "development"
        return self.PLATFORM_FROM_NUMBER_SHARED

    @property
    def webhook_allow_private_urls(self) -> bool:
        if self.WEBHOOK_ALLOW_PRIVATE_URLS is None:
            return self.ENVIRONMENT == "development"
        return self.WEBHOOK_ALLOW_PRIVATE_URLS


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit(process: str) -> Settings:
    """The settings, checked as a process starts: settings it cannot run on end it at once, with
    a message naming each problem, instead of failing its requests later. The message never
    shows a setting's value (pydantic's own would show them all, secrets included)."""
    try:
        return get_settings()
    except ValidationError as error:
        problems = []
        for each in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in each["loc"])
            message = each["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        sys.exit(f"{process}: refusing to start: " + "; ".join(problems))
