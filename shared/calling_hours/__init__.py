"""When a call may be placed: its recipient's local hours, the law's rules for where the number
is, its campaign's hours, and the call's own startAt and notAfter."""
