"""Where a change of a do-not-contact list came from, as its history and events name it."""

API = "api"
CSV = "csv"
SMS_KEYWORD = "sms_keyword"
KEYPRESS = "keypress"
OPERATOR = "operator"
# Twilio refused a send with 21610: the number texted STOP to Twilio itself.
CARRIER_21610 = "carrier_21610"

ALL = (API, CSV, SMS_KEYWORD, KEYPRESS, OPERATOR, CARRIER_21610)

ADDED = "added"
REMOVED = "removed"
