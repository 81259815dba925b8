"""Batches racing with the same keys, against real server processes (two replicas on one
PostgreSQL; one SQLite server): every keyed item is written once, every other answer
replays it, and an opening deployment in every batch takes its lock once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import API, Racers, event_body
from tests.support.names import unique
from tests.support.servers import run_server

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]

RACERS = 8
ITEMS = 60


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def urls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    log_dir: Path = tmp_path_factory.mktemp("batch-race")
    if request.param == "sqlite":
        with run_server(f"sqlite:///{log_dir / 'race.db'}", log_dir=log_dir) as server:
            yield [server.url, server.url]
        return
    database_url = request.getfixturevalue("postgres_database_url")
    with run_server(database_url, log_dir=log_dir) as first:
        with run_server(database_url, log_dir=log_dir) as second:
            yield [first.url, second.url]


def test_racing_batches_write_each_keyed_item_once(urls: list[str]) -> None:
    racers = Racers(urls, clients=RACERS)
    service = unique("race")
    try:
        items = [
            event_body(f"seed {i}", service=service, type="incident", status="open")
            | {"idempotencyKey": f"{service}-{i}"}
            for i in range(ITEMS)
        ]
        # Each batch also opens a deployment of the service (no key): one takes the lock.
        deploy = event_body("deploy", service=service, type="deployment", status="start")
        responses = racers.race(f"{API}/events/batch", [{"events": [*items, deploy]}] * RACERS)
    finally:
        racers.close()
    answers = [response.json() for response in responses]
    assert all(response.status_code == 200 for response in responses), answers
    seeded: Counter[str] = Counter()
    ids: dict[str, set[str]] = {}
    for answer in answers:
        for result in answer["results"][:ITEMS]:
            seeded[result["outcome"]] += 1
            ids.setdefault(result["idempotencyKey"], set()).add(result["event"]["metadata"]["id"])
    assert seeded == {"created": ITEMS, "replayed": ITEMS * (RACERS - 1)}
    assert all(len(found) == 1 for found in ids.values())  # every answer names one event
    deploys = Counter(answer["results"][ITEMS]["outcome"] for answer in answers)
    assert deploys == {"created": 1, "refused": RACERS - 1}
    found = httpx.get(
        f"{urls[0]}{API}/events/search", params={"service": service, "per_page": 1000}
    ).json()
    assert found["totalCount"] == ITEMS + 1
    locks = httpx.get(f"{urls[0]}{API}/locks/list").json()["locks"]
    assert [lock["service"] for lock in locks].count(service) == 1
