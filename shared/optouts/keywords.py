"""The words a text is read as: a whole message of one of them (any case, surrounding space
ignored) opts the sender out, back in, or asks for help. These are Twilio's own defaults, so
what Twilio does with the number and what the account's list says agree."""

from enum import StrEnum


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


_WORDS = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        Keyword.STOP,
    ),
    **dict.fromkeys(("START", "UNSTOP", "YES"), Keyword.START),
    "HELP": Keyword.HELP,
}


def keyword(body: str) -> Keyword | None:
    """What the message asks for, or None for any other message ("stop calling me" is not
    STOP: only a whole message of the word is)."""
    return _WORDS.get(body.strip().upper())
