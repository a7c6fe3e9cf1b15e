"""A Twilio-compatible sandbox carrier: the part of Twilio's 2010-04-01 REST API the workers use,
with each call's life played in real time and signed status callbacks, as Twilio sends them."""
