"""Whole numbers a client sends are bounded where the database's columns and clauses are: past
that, a 422 naming the field, never a 500 (found by Schemathesis)."""

import pytest

from tests.api.conftest import KeyedClient

HUGE = 389187655616872229123373301497856


@pytest.mark.parametrize("path", ["/api/calls", "/api/credits", "/api/campaigns"])
def test_a_page_offset_past_any_table_is_a_422_naming_it(api: KeyedClient, path: str) -> None:
    response = api.get(path, offset=HUGE)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "offset"]
    assert api.get(path, offset=2**31 - 1).status_code == 200


def test_a_campaigns_lines_past_any_account_are_a_422_naming_them(api: KeyedClient) -> None:
    body = {"name": "many lines", "script": "Hello {name}", "maxConcurrentCalls": HUGE}
    response = api.post("/api/campaigns", body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "maxConcurrentCalls"]

    created = api.post("/api/campaigns", {**body, "maxConcurrentCalls": 2**31 - 1})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    response = api.patch(f"/api/campaigns/{campaign_id}", {"maxConcurrentCalls": HUGE})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "maxConcurrentCalls"]
