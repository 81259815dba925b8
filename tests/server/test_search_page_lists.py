"""The pages' lists at scale, kept right: the board's latest deployment per service x
environment is kept between renders and brought up to date from the journal (so a write
through another server process shows at the next render), the board lists a bounded
number of pairs while its problems come from all of them, and the service and
environment pickers list every name events carry. Plans: test_query_plans.py."""

from __future__ import annotations

import re

import pytest
from tracker_server.web import queries

from tests.server.helpers import API, create_event, update_body

pytestmark = pytest.mark.server


def _latest(html: str) -> dict[tuple[str, str], str]:
    """(service, environment) -> status, from the board's latest-deployments table."""
    table = html.split('id="latest-h"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<th scope="row">([^<]+).*?data-label="Environment">([^<]+)</td>'
        r'<td data-label="Status"><span class="status status-([^"]+)"',
        table,
    )
    return {(service.strip(), environment): status for service, environment, status in rows}


def test_a_write_through_another_process_shows_at_the_next_render(make_client):
    board, writer = make_client(), make_client()  # two servers on one database
    first = create_event(writer, "deploy api 1", service="api", status="success")
    create_event(writer, "deploy web 1", service="web", status="success", environment="UAT")
    assert _latest(board.get("/").text) == {
        ("api", "production"): "success",
        ("web", "UAT"): "success",
    }
    second = create_event(writer, "deploy api 2", service="api", status="start")
    create_event(writer, "an incident", service="db", type="incident", status="open")
    assert _latest(board.get("/").text)[("api", "production")] == "start"
    response = writer.put(f"{API}/event", json=update_body(second, status="failure"))
    assert response.status_code == 200, response.text
    html = board.get("/").text
    assert _latest(html)[("api", "production")] == "failure"
    assert 'data-problem="failed"' in html  # the failed latest deployment is a problem
    assert writer.delete(f"{API}/event/{second['metadata']['id']}").status_code == 200
    assert _latest(board.get("/").text)[("api", "production")] == "success"  # the previous
    assert writer.delete(f"{API}/event/{first['metadata']['id']}").status_code == 200
    assert _latest(board.get("/").text) == {("web", "UAT"): "success"}


def test_the_board_lists_a_bounded_number_of_pairs_and_every_failure(make_client, monkeypatch):
    monkeypatch.setattr(queries, "BOARD_PAIRS", 3)
    monkeypatch.setattr(queries, "BOARD_FAILED", 2)
    client = make_client()
    for n in range(5):
        create_event(client, f"deploy s{n}", service=f"s{n}", status="failure")
    html = client.get("/").text
    assert list(_latest(html)) == [("s0", "production"), ("s1", "production"), ("s2", "production")]
    assert 'data-hidden-pairs="2"' in html and "The first 3 of 5" in html
    assert html.count('data-problem="failed"') == 2  # listed, from every pair ...
    assert 'data-problem="failed-more"' in html and "and 3 more failed" in html  # ... counted


def test_the_pickers_list_every_service_and_environment_events_carry(make_client):
    client = make_client()
    for service, environment in (("zeta", "production"), ("alpha", "staging"), ("mid", "UAT")):
        create_event(client, service=service, environment=environment)
    html = client.get("/timeline").text
    picker = html.split('name="service"', 1)[1].split("</select>", 1)[0]
    assert [name for name in ("alpha", "mid", "zeta") if f">{name}<" in picker] == [
        "alpha",
        "mid",
        "zeta",
    ]
    assert picker.index(">alpha<") < picker.index(">mid<") < picker.index(">zeta<")
    environments = html.split('name="environment"', 1)[1].split("</select>", 1)[0]
    assert ">staging<" in environments  # beyond upstream's eight
    # The names are kept between renders until the journal moves: a new one shows at once.
    create_event(client, service="beta", environment="eu-west-1")
    html = client.get("/insights").text
    assert ">beta<" in html.split('name="service"', 1)[1].split("</select>", 1)[0]
    assert ">eu-west-1<" in html.split('name="environment"', 1)[1].split("</select>", 1)[0]


def test_an_entry_that_commits_after_a_later_one_is_not_missed(make_client, database_url):
    # On PostgreSQL a transaction may take its journal id before another and commit after
    # it: the board, already up to date with the later id, must still apply the earlier.
    from sqlalchemy import create_engine, text
    from tracker_server.db import normalize_database_url

    client = make_client()
    create_event(client, "deploy x", service="x")
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.begin() as conn:
            first = conn.execute(text("SELECT max(id) FROM journal")).scalar_one()
            # A later entry (a replay of the same creation) leaves a gap below it.
            conn.execute(
                text(
                    "INSERT INTO journal (id, occurred_at, kind, payload) SELECT :id, "
                    "occurred_at, kind, payload FROM journal WHERE id = :first"
                ),
                {"id": first + 3, "first": first},
            )
        assert set(_latest(client.get("/").text)) == {("x", "production")}  # up to date
        create_event(client, "deploy late", service="late")
        with engine.begin() as conn:  # ... with an id in the gap
            replay = {"replay": first + 3}
            late = conn.execute(text("SELECT max(id) FROM journal WHERE id <> :replay"), replay)
            late_id = late.scalar_one()
            if late_id > first + 3:  # SQLite numbers after the largest; PostgreSQL's
                # sequence already gave it an id in the gap
                conn.execute(
                    text("UPDATE journal SET id = :late WHERE id = :newest"),
                    {"late": first + 1, "newest": late_id},
                )
    finally:
        engine.dispose()
    assert set(_latest(client.get("/").text)) == {("x", "production"), ("late", "production")}
