"""Idempotency-Key: a repeat answers the first result and writes nothing."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tracker_server.db import create_database_engine, upgrade_schema
from tracker_server.store import idempotency
from tracker_server.tables import idempotency_keys

from tests.server.helpers import API, assert_error, event_body

pytestmark = pytest.mark.server


def test_a_repeated_create_answers_the_first_event(client):
    headers = {"Idempotency-Key": "run-1-deploy"}
    first = client.post(f"{API}/event", json=event_body(status="start"), headers=headers)
    again = client.post(f"{API}/event", json=event_body(status="start"), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert client.get(f"{API}/events/list").json()["totalCount"] == 1
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 1


def test_the_same_key_with_another_body_is_400(client):
    headers = {"Idempotency-Key": "k1"}
    assert client.post(f"{API}/event", json=event_body(), headers=headers).status_code == 200
    other = client.post(f"{API}/event", json=event_body(title="other"), headers=headers)
    assert_error(other, 400, 3, "Idempotency-Key reused with a different request")
    assert client.get(f"{API}/events/list").json()["totalCount"] == 1


def test_a_refused_create_is_not_remembered(client):
    """A 409 keeps nothing: the same key succeeds once the lock is free."""
    holder = client.post(
        f"{API}/lock", json={"service": "api", "environment": "production", "who": "bob"}
    ).json()["lock"]
    headers = {"Idempotency-Key": "job-7"}
    assert_error(
        client.post(f"{API}/event", json=event_body(status="start"), headers=headers), 409, 6
    )
    client.get(f"{API}/unlock/{holder['id']}")
    retry = client.post(f"{API}/event", json=event_body(status="start"), headers=headers)
    assert retry.status_code == 200, retry.text
    assert client.get(f"{API}/events/list").json()["totalCount"] == 1


def test_a_repeated_lock_answers_the_first_lock(client):
    body = {"service": "api", "environment": "UAT", "who": "ci"}
    headers = {"Idempotency-Key": "lock-1"}
    first = client.post(f"{API}/lock", json=body, headers=headers)
    again = client.post(f"{API}/lock", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    # Without the key the same request is a conflict: the key is what makes it a repeat.
    assert_error(client.post(f"{API}/lock", json=body), 409, 6)


def test_keys_of_events_and_locks_do_not_mix(client):
    headers = {"Idempotency-Key": "same"}
    assert client.post(f"{API}/event", json=event_body(), headers=headers).status_code == 200
    lock = client.post(f"{API}/lock", json={"service": "x", "environment": "UAT"}, headers=headers)
    assert lock.status_code == 200, lock.text


def test_a_bad_key_is_400(client):
    response = client.post(
        f"{API}/event", json=event_body(), headers={"Idempotency-Key": "k" * 201}
    )
    assert_error(response, 400, 3, "Idempotency-Key")


def test_an_expired_key_not_yet_deleted_is_a_new_key(database_url, monkeypatch):
    """Expired keys are deleted at most once a minute (``PURGE_EVERY``), not by every
    write: meanwhile an expired key still stored is claimed again as a new one."""
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    start = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    claim = functools.partial(idempotency.claim, scope="test", key="run-1")
    try:
        with engine.begin() as conn:
            assert claim(conn, fingerprint="a", now=start) is None
            idempotency.remember(conn, scope="test", key="run-1", status_code=200, body="{}")
        later = start + idempotency.KEY_LIFETIME + timedelta(seconds=1)
        monkeypatch.setattr(idempotency, "_purged_at", later)  # deleted just now: not again
        with engine.begin() as conn:
            assert claim(conn, fingerprint="a", now=start + timedelta(hours=1)) is not None
            assert claim(conn, fingerprint="b", now=later) is None  # new, not "reused"
            [row] = conn.execute(select(idempotency_keys)).all()
            assert (row.request_hash, row.status_code, row.created_at) == ("b", 0, later)
    finally:
        engine.dispose()
