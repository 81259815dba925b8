"""Environments beyond upstream's eight (``staging``, ``eu-west-1``) in the Insights and
Timeline selects, the one shown selected (in-process, SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import pytest

from tests.server.helpers import create_event

pytestmark = pytest.mark.server

UPSTREAM = [
    "development",
    "integration",
    "TNR",
    "UAT",
    "recette",
    "preproduction",
    "production",
    "mco",
]


def _options(page: str, name: str) -> tuple[list[str], list[str]]:
    """The options of the select ``name``, and those selected."""
    select = re.search(rf'<select name="{name}">(.*?)</select>', page, re.S)
    assert select, f"no select {name}"
    options = re.findall(r'<option(?: value="")?( selected)?>([^<]*)</option>', select.group(1))
    return [text for _, text in options], [text for chosen, text in options if chosen]


@pytest.fixture
def used(client):
    for environment in ("staging", "eu-west-1", "staging"):
        create_event(
            client,
            f"deploy api to {environment}",
            status="success",
            environment=environment,
            endDate="2026-03-02T10:00:00Z",
        )
    create_event(client, "deploy api to production", status="failure")
    return client


def test_insights_offer_every_environment_used_and_keep_the_chosen_one(used):
    page = used.get(
        "/insights",
        params={
            "service": "api",
            "environment": "staging",
            "start_date": "2026-03-01",
            "end_date": "2026-03-03",
        },
    )
    assert page.status_code == 200, page.text
    options, selected = _options(page.text, "environment")
    assert options == [*UPSTREAM, "eu-west-1", "staging"]
    assert selected == ["staging"]
    # The numbers are staging's: two successful deployments, none failed.
    assert 'data-key="deployments" data-value="2"' in page.text
    assert "api in staging" in page.text


def test_the_timeline_keeps_a_custom_environment_selected(used):
    page = used.get("/timeline", params={"environment": "eu-west-1"})
    assert page.status_code == 200, page.text
    options, selected = _options(page.text, "environment")
    assert options == ["any", *UPSTREAM, "eu-west-1", "staging"]
    assert selected == ["eu-west-1"]
    assert "deploy api to eu-west-1" in page.text
    assert "deploy api to staging" not in page.text


def test_an_environment_without_events_stays_selected(client):
    page = client.get("/insights", params={"service": "api", "environment": "eu-central-1"})
    assert page.status_code == 200, page.text
    assert _options(page.text, "environment")[1] == ["eu-central-1"]
