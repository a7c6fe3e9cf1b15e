"""The numbers an account may call and text from: its own caller IDs, which an operator adds
once the customer has shown they hold them, and the platform's TWILIO_FROM_NUMBER where
PLATFORM_FROM_NUMBER_SHARED opens it to every account.

The one rule for every path that sets or uses a caller ID: a campaign saved, a call or an SMS
accepted, and a call or an SMS handed to Twilio (a number removed meanwhile is not sent from).
"""

from sqlalchemy.orm import Session

from shared.accounts import service as accounts_service
from shared.caller_ids import repository
from shared.config import get_settings
from shared.models import Account, CallerId
from shared.telephony.numbers import InvalidNumber, to_e164

# What a call or an SMS refused at send time records as its error code.
NOT_ALLOWED_CODE = "caller-id-not-allowed"


class CallerIdNotAllowed(ValueError):
    """The account may not call or text from this number (or has no number at all)."""

    code = NOT_ALLOWED_CODE


class InvalidCallerId(InvalidNumber):
    """A caller ID that is no phone number: told apart from the callee's number."""


class CallerIdTaken(ValueError):
    def __init__(self, number: str, owner: str, account_id: str) -> None:
        whose = "this account" if owner == account_id else f"account {owner}"
        super().__init__(f"{number} is already a caller ID of {whose}")


class UnknownCallerId(LookupError):
    pass


def parse(raw: str) -> str:
    """E.164, as every number is kept; InvalidCallerId naming the input otherwise."""
    try:
        return to_e164(raw, get_settings().DEFAULT_REGION)
    except InvalidNumber as exc:
        raise InvalidCallerId(str(exc)) from None


def platform_number() -> str | None:
    """TWILIO_FROM_NUMBER, where every account may use it."""
    settings = get_settings()
    return settings.TWILIO_FROM_NUMBER if settings.platform_from_number_shared else None


def refusal(session: Session, account_id: str, number: str) -> CallerIdNotAllowed | None:
    """Why the account may not use `number` (E.164) now; None when it may."""
    if number == platform_number() or repository.owns(session, account_id, number):
        return None
    return CallerIdNotAllowed(
        f"{number} is not one of this account's caller IDs (GET /api/caller-ids lists them)"
    )


def ensure_allowed(session: Session, account_id: str, number: str) -> None:
    refused = refusal(session, account_id, number)
    if refused is not None:
        raise refused


def default(session: Session, account_id: str) -> str | None:
    """The caller ID of a campaign or an SMS that names none: the platform's number where it is
    shared, otherwise the account's first caller ID (None: it has none)."""
    return platform_number() or repository.first(session, account_id)


def choose(session: Session, account_id: str, raw: str | None) -> str:
    """The caller ID a campaign or an SMS is saved with: `raw` in E.164 if the account may use
    it, or the default. Raises InvalidCallerId or CallerIdNotAllowed."""
    if raw is None:
        number = default(session, account_id)
        if number is None:
            raise CallerIdNotAllowed(
                "this account has no caller ID to call or text from: an operator adds its "
                "numbers with `toingg accounts caller-ids add`"
            )
        return number
    number = parse(raw)
    ensure_allowed(session, account_id, number)
    return number


def of_account(session: Session, account_id: str) -> list[CallerId]:
    return repository.of_account(session, account_id)


def add(session: Session, account_id: str, raw: str) -> CallerId:
    """Give the account a number. A number is one account's: adding one that is already a
    caller ID (of this account or another, or being added at the same moment) is refused."""
    number = parse(raw)
    if session.get(Account, account_id) is None:
        raise accounts_service.UnknownAccount(account_id)
    while True:
        added = repository.insert_new(session, account_id, number)
        if added is not None:
            return added
        owner = repository.owner(session, number)
        if owner is not None:
            raise CallerIdTaken(number, owner, account_id)
        # Removed between the insert and the look at its owner: free again.


def remove(session: Session, account_id: str, raw: str) -> str:
    """Take a number from the account: campaigns saved with it are refused new calls, and its
    queued calls and SMS fail as they come to be sent."""
    number = parse(raw)
    if not repository.delete_one(session, account_id, number):
        raise UnknownCallerId(number)
    return number
