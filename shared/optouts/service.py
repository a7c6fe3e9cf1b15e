"""Opt-outs: a text of STOP (or START) from the callee, the opt-out key pressed during a
call, and Twilio's refusal of a text to a number that texted STOP (error 21610). Each puts the
number on the do-not-contact list of the accounts concerned (or takes it off), with its
source, through shared.dnc: the one list calls and texts are checked against, at acceptance
and again right before they go out."""

import logging
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.calls import repository as calls_repository
from shared.config import get_settings
from shared.dnc import service as dnc
from shared.dnc import sources
from shared.models import Call
from shared.optouts import repository
from shared.optouts.keywords import Keyword, keyword
from shared.telephony.numbers import InvalidNumber

log = logging.getLogger(__name__)

# What a text of START may take back: the opt-outs the callee made by text. An entry the
# account or an operator made stays whatever the callee texts, and so does the opt-out key
# pressed in a call: a START or a YES answering a text consents to texts again, not to the
# prerecorded calls the callee refused by key.
BY_TEXT = frozenset({sources.SMS_KEYWORD, sources.CARRIER_21610})
# Twilio's code for a message refused because its recipient texted STOP to its sender.
UNSUBSCRIBED_RECIPIENT = "21610"

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


class InvalidText(ValueError):
    """An incoming-message webhook without what every one of Twilio's carries."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Text:
    """A text a phone sent to one of our numbers."""

    phone: str
    our_number: str
    body: str
    message_sid: str


def read_text(params: dict[str, str]) -> Text:
    """The incoming-message webhook's fields (Twilio sends both numbers in E.164)."""
    for field in ("From", "To"):
        if not _E164.match(params.get(field, "")):
            raise InvalidText(field, f"{params.get(field, '')!r} is not a number in E.164")
    return Text(params["From"], params["To"], params.get("Body", ""), params.get("MessageSid", ""))


def text_received(session: Session, text: Text) -> str | None:
    """Act on a text: STOP and its like put the sender on the list of every account that
    called or texted them from that number; START and its like take back what the callee's
    texts put there (an entry the account or an operator made, or the opt-out key, stays); HELP is
    answered. What to text back, or None. Twilio itself confirms a STOP or a START to the
    phone, and would refuse a reply to a STOP, so those are not answered."""
    word = keyword(text.body)
    if word is None:
        return None
    if word is Keyword.HELP:
        return get_settings().HELP_TEXT
    reason = f"texted {text.body.strip()} to {text.our_number} ({text.message_sid})"
    for account_id in repository.accounts_reaching(session, text.phone, text.our_number):
        try:
            if word is Keyword.STOP:
                dnc.add(session, account_id, text.phone, reason, sources.SMS_KEYWORD)
            elif _opted_out_by_text(session, account_id, text.phone):
                dnc.remove(session, account_id, text.phone, reason, sources.SMS_KEYWORD)
        except InvalidNumber:
            # Twilio's number, not one phonenumbers knows: none of ours was ever sent to it.
            log.warning("a text of %s from %s, not a number we call", word, text.phone)
            return None
    return None


def _opted_out_by_text(session: Session, account_id: str, number: str) -> bool:
    entry = dnc.entry(session, account_id, number)
    return entry is not None and entry.listed and entry.source in BY_TEXT


def key_pressed(session: Session, call: Call, digits: str) -> bool:
    """The callee pressed `digits` during the call: whether it was the opt-out digit the call
    was accepted with, which puts the number on the account's list (once, however often
    Twilio posts the key)."""
    if call.opt_out_digit is None or digits != call.opt_out_digit:
        return False
    if calls_repository.mark_opted_out(session, call.id):
        reason = f"pressed {digits} during call {call.id}"
        dnc.add(session, call.account_id, call.to_number, reason, sources.KEYPRESS)
    return True


def carrier_refused(session: Session, account_id: str, number: str, our_number: str) -> None:
    """Twilio refused a text to `number` from `our_number` with 21610: the recipient texted
    STOP to it, perhaps before anything of ours knew the number."""
    reason = f"Twilio refused a text from {our_number}: the recipient texted STOP to it (21610)"
    dnc.add(session, account_id, number, reason, sources.CARRIER_21610)
