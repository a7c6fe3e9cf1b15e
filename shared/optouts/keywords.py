"""The words a text is read as: a whole message of one of them (any case, surrounding space
ignored) opts the sender out, back in, or asks for help. These are Twilio's own defaults, so
what Twilio does with the number and what the account's list says agree."""

import string
import unicodedata
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


# The opt-out words as people also write them, read after the punctuation around a message
# and its hyphens and spacing are set aside: a "Stop." or "opt out" left unread is a number
# rung after it asked not to be, and the FCC counts "opt out" among the words that revoke.
_LOOSE_OPT_OUTS = {
    **{word: Keyword.STOP for word, meant in _WORDS.items() if meant is Keyword.STOP},
    "OPT OUT": Keyword.STOP,
    "STOP ALL": Keyword.STOP,
}
_AROUND = string.punctuation + string.whitespace


def keyword(body: str) -> Keyword | None:
    """What the message asks for, or None for any other message ("stop calling me" is not
    STOP: only a whole message of the word is). An opt-out word is also read through the
    punctuation around it ("STOP.", "Quit!") and as "opt out" or "stop all"; the words that
    take a number off the list are read only as written: a "Yes!" answering a question takes
    nobody off it."""
    # As typed on any phone: full-width letters are the letters, and invisible format
    # characters (a zero-width space a keyboard left) are nothing.
    typed = "".join(
        c for c in unicodedata.normalize("NFKC", body) if unicodedata.category(c) != "Cf"
    )
    word = typed.strip().upper()
    found = _WORDS.get(word)
    if found is not None:
        return found
    loose = " ".join(word.strip(_AROUND).replace("-", " ").split())
    return _LOOSE_OPT_OUTS.get(loose)
