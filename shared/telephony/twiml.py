"""What a call says: a script with its {name} filled in, spoken by TwiML's <Say>, within
Twilio's limits (a longer <Say> or TwiML answer is Twilio's application error to the callee,
and the call is paid all the same).

Twilio speaks at most 4,096 characters in a <Say> and reads at most 64 kB of TwiML. The answer
is one <Say> in a <Response>, and a character takes at most 5 bytes in it ("&" is "&amp;"), so
a <Say> within its limit keeps the answer within 21 kB: the first limit is the one to check."""

from twilio.twiml.voice_response import Gather, VoiceResponse

SAY_MAX_CHARACTERS = 4_096
TWIML_MAX_BYTES = 64 * 1024  # what the <Say> limit keeps the answer under (see above)
PLACEHOLDER = "{name}"


def render_script(script: str, name: str) -> str:
    # Only {name} is a placeholder; any other brace is the customer's text and stays as it is.
    return script.replace(PLACEHOLDER, name)


def say(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    return str(response)


# How a key is read out in an opt-out offer.
_SPOKEN_KEYS = {"*": "star", "#": "pound"}


def say_offering_opt_out(text: str, digit: str, action: str, offer: str) -> str:
    """The text, with the offer to press `digit` spoken first, inside one <Gather> that
    listens for a single key all the while and posts it to `action`. A prerecorded call must
    offer its keypress opt-out within 2 seconds of identifying the caller (47 CFR
    64.1200(b)(3)): the offer opens the message, and the key is honoured from the first word
    on, so wherever the script identifies the caller the opt-out is already offered and open.
    No key: the call ends once the text is spoken, as a plain <Say>'s does."""
    response = VoiceResponse()
    gather = Gather(num_digits=1, action=action, method="POST", action_on_empty_result=False)
    gather.say(offer.replace("{digit}", _SPOKEN_KEYS.get(digit, digit)))
    gather.say(text)
    response.append(gather)
    return str(response)


def say_and_hang_up(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def spoken_problem(text: str) -> str | None:
    """Why Twilio would refuse to speak this text, or None."""
    if len(text) > SAY_MAX_CHARACTERS:
        return (
            f"is {len(text):,} characters spoken; Twilio's <Say> takes at most "
            f"{SAY_MAX_CHARACTERS:,} (and a TwiML answer at most 64 kB)"
        )
    return None


def script_problem(script: str, name_max_length: int) -> str | None:
    """Why this script could not be spoken for some callee whose name has at most
    name_max_length characters, or None."""
    if PLACEHOLDER not in script:
        return spoken_problem(script)
    problem = spoken_problem(render_script(script, "x" * name_max_length))
    if problem is None:
        return None
    return f"with a name of {name_max_length} characters in each {PLACEHOLDER}, {problem}"
