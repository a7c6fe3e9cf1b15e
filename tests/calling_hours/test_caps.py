"""The caps on calls to one number: the account's MAX_CALLS_PER_NUMBER_PER_DAY, and Florida's
and Oklahoma's 3 a day on the same subject (a campaign)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from shared.calling_hours import rules, service
from shared.config import get_settings

NOW = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)  # noon in New York and Miami, 11:00 in Oklahoma


@dataclass
class OneCall:
    to_number: str
    campaign_id: str = "campaign-a"
    timezone: str | None = None
    start_at: datetime | None = None
    not_after: datetime | None = None


@pytest.fixture(autouse=True)
def lawful(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "CALLING_RULES", True)
    monkeypatch.setattr(get_settings(), "CALLING_HOURS", "08:00-21:00")
    monkeypatch.setattr(get_settings(), "MAX_CALLS_PER_NUMBER_PER_DAY", 10)


def _earlier(campaign: str, *hours: int) -> list[tuple[str, datetime]]:
    return [(campaign, NOW - timedelta(hours=h)) for h in hours]


@pytest.mark.parametrize(("number", "rule"), [("+13055551234", "us-fl"), ("+14055551234", "us-ok")])
def test_three_calls_on_the_same_campaign_in_24_hours_and_no_more(number: str, rule: str) -> None:
    tried = _earlier("campaign-a", 23, 2, 1)
    held = service.verdict(OneCall(number), None, None, NOW, tried)
    assert (held.kind, held.rule) == (rules.WAIT, rule)
    assert held.at == NOW + timedelta(hours=1)  # the call of 23 hours ago leaves the window
    # Another subject is another count; two on this one leave room for a third.
    assert service.verdict(OneCall(number), None, None, NOW, _earlier("b", 3, 2, 1)).kind == "now"
    assert service.verdict(OneCall(number), None, None, NOW, tried[1:]).kind == rules.NOW


def test_elsewhere_the_accounts_cap_counts_every_campaign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "MAX_CALLS_PER_NUMBER_PER_DAY", 3)
    new_york = OneCall("+12125550100")
    assert service.verdict(new_york, None, None, NOW, _earlier("a", 3, 2)).kind == rules.NOW
    held = service.verdict(new_york, None, None, NOW, [*_earlier("a", 3, 2), ("b", NOW)])
    assert (held.kind, held.rule) == (rules.WAIT, "MAX_CALLS_PER_NUMBER_PER_DAY")
    assert held.at == NOW + timedelta(hours=21)
