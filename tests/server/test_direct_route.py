"""POST /event, GET /event/{id} and GET /events/search read their own inputs
(``routes.common.DirectRoute``): the same answers as FastAPI's own handler, at a fraction
of the calls.

FastAPI's handler answers the same create sent as ``application/json; charset=utf-8``
(only a plain ``application/json`` takes the direct path), and the same search with an
unknown parameter added (``unread=1``, which FastAPI ignores): each case is sent both ways.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from tracker_server.deps import WriteDep, require_reader
from tracker_server.routes.common import DirectRoute, declared_inputs

from tests.server.helpers import API, event_body

pytestmark = pytest.mark.server

DIRECT = {"Content-Type": "application/json"}
STANDARD = {"Content-Type": "application/json; charset=utf-8"}
ADMIN = {"Authorization": "Bearer admin-secret"}


def _both_ways(client: Any, content: bytes, headers: dict[str, str]) -> list[Any]:
    return [
        client.post(f"{API}/event", content=content, headers={**headers, **kind})
        for kind in (DIRECT, STANDARD)
    ]


def _same(direct: Any, standard: Any) -> None:
    assert direct.status_code == standard.status_code, (direct.text, standard.text)
    if direct.status_code != 200:
        assert direct.json() == standard.json()
        return
    ours, theirs = direct.json()["event"], standard.json()["event"]
    assert ours["attributes"] == theirs["attributes"] and ours["title"] == theirs["title"]
    assert set(ours["metadata"]) == set(theirs["metadata"])


BODIES = {
    "valid": json.dumps(event_body()).encode(),
    "not JSON": b'{"title": ',
    "not UTF-8": b'{"title": "\xff"}',
    "a list": b"[]",
    "empty": b"",
    "a wrong enum": json.dumps(event_body(type="nope")).encode(),
    "no attributes": json.dumps({"title": "x"}).encode(),
    "a title too long": json.dumps(event_body("x" * 5000)).encode(),
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("case", list(BODIES))
def test_a_create_answers_as_fastapis_handler_does(make_client, case):
    client = make_client()
    _same(*_both_ways(client, BODIES[case], {}))


def test_a_repeated_idempotency_key_answers_as_fastapis_handler_does(make_client):
    client = make_client()
    first, other = json.dumps(event_body("one")).encode(), json.dumps(event_body("two")).encode()
    for kind, key in ((DIRECT, "k-direct"), (STANDARD, "k-standard")):
        headers = {**kind, "Idempotency-Key": key}
        created = client.post(f"{API}/event", content=first, headers=headers)
        replayed = client.post(f"{API}/event", content=first, headers=headers)
        assert replayed.headers.get("Idempotent-Replayed") == "true"
        assert replayed.json() == created.json()
    _same(
        client.post(
            f"{API}/event", content=other, headers={**DIRECT, "Idempotency-Key": "k-direct"}
        ),
        client.post(
            f"{API}/event", content=other, headers={**STANDARD, "Idempotency-Key": "k-standard"}
        ),
    )
    _same(*_both_ways(client, first, {"Idempotency-Key": ""}))


def _token(client: Any, **body: Any) -> dict[str, str]:
    created = client.post(f"{API}/tokens", json={"name": "ci"} | body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['secret']}"}


def _refused_callers(client: Any) -> dict[str, dict[str, str]]:
    """The headers of callers no write of service ``api`` (or a close) lets through."""
    return {
        "nobody": {},
        "an unknown token": {"Authorization": "Bearer trk_nope"},
        "not bearer": {"Authorization": "Basic eDp5"},
        "a read-only token": _token(client, readOnly=True),
        "a token of another service": _token(client, services=["web"]),
    }


@pytest.mark.parametrize("public_reads", [True, False])
def test_the_access_rules_refuse_as_fastapis_handler_does(make_client, public_reads):
    client = make_client(auth=True, admin_token="admin-secret", public_reads=public_reads)
    valid, invalid = BODIES["valid"], BODIES["a wrong enum"]
    callers = _refused_callers(client) | {
        "a token of the service": _token(client, services=["api"]),
        "the admin": ADMIN,
    }
    for caller, headers in callers.items():
        for body in (valid, invalid):
            direct, standard = _both_ways(client, body, headers)
            _same(direct, standard)
            assert direct.status_code != 500, (caller, direct.text)


SEARCHES = [
    "service=api&environment=production&type=deployment&status=start&per_page=50",
    "service=api&environment=production&type=deployment&status=success",
    "service=api",
    "type=1&priority=P3&source=github",
    "type=nope",
    "status=0",
    "environment=prod",
    "slack_id=s-1",
    "service=api&per_page=0",
    "service=api&per_page=1001",
    "service=api&per_page=05&page=1",
    "service=api&per_page=1&page=2",
    "service=api&per_page=1&page=-1",
    "service=api&perPage=1",
    "service=api&cursor=abc",
    "service=api&cursor=abc&page=2",
    "service=api&cursor=" + "x" * 1001,
    "service=" + "x" * 300,
    "service=api&service=web",
    "service=api&impact=true",
    "",
]


@pytest.mark.parametrize("query", SEARCHES)
def test_a_search_answers_as_fastapis_handler_does(make_client, query):
    # An unknown parameter (FastAPI ignores it) sends the same search through its handler.
    client = make_client()
    for n in range(3):
        assert client.post(f"{API}/event", json=event_body(f"e{n}", slackId="s-1")).is_success
    direct = client.get(f"{API}/events/search?{query}")
    standard = client.get(f"{API}/events/search?{query}&unread=1")
    assert direct.status_code == standard.status_code, (direct.text, standard.text)
    assert direct.json() == standard.json()


@pytest.mark.parametrize("public_reads", [True, False])
def test_the_lookups_refuse_as_fastapis_handler_does(make_client, public_reads):
    client = make_client(auth=True, admin_token="admin-secret", public_reads=public_reads)
    event = client.post(f"{API}/event", json=event_body(), headers=ADMIN).json()["event"]
    for headers in ({}, {"Authorization": "Bearer trk_nope"}, _token(client, readOnly=True)):
        direct = client.get(f"{API}/events/search?service=api", headers=headers)
        standard = client.get(f"{API}/events/search?service=api&unread=1", headers=headers)
        assert (direct.status_code, direct.json()) == (standard.status_code, standard.json())
        found = client.get(f"{API}/event/{event['metadata']['id']}", headers=headers)
        assert found.status_code == direct.status_code, found.text
        if found.status_code != 200:
            assert found.json() == direct.json()


class _Counted:
    """Python calls in the app's threads (its event loop and the committer), by name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.on = False

    def __call__(self, frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and self.on:
            self.calls[frame.f_code.co_name] += 1

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.calls = Counter()
        self.on = True
        try:
            yield self.calls
        finally:
            self.on = False


def test_a_create_resolves_no_dependency_through_fastapi(make_client):
    counted = _Counted()
    threading.setprofile(counted)  # the committer thread starts with the first write
    try:
        client = make_client()
        client.portal.call(sys.setprofile, counted)  # the app's event loop thread
        per_create = {}
        for name, kind in (("direct", DIRECT), ("standard", STANDARD)):
            _both_ways(client, BODIES["valid"], {})  # warm
            with counted.counting() as calls:
                for n in range(20):
                    body = json.dumps(event_body(f"{name} {n}")).encode()
                    assert (
                        client.post(f"{API}/event", content=body, headers=kind).status_code == 200
                    )
            per_create[name] = (calls["solve_dependencies"] / 20, sum(calls.values()) / 20)
        client.portal.call(sys.setprofile, None)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    assert per_create["standard"][0] >= 5, per_create  # FastAPI's: one per dependency
    assert per_create["direct"][0] == 0, per_create
    # The same run, the same libraries: at least 250 calls fewer (measured: about 500 of
    # 3,100 here, the audit log's and the test client's included; 480 of 1,450 under uvicorn).
    assert per_create["direct"][1] < per_create["standard"][1] - 250, per_create


class _Body(BaseModel):
    name: str


class _ReadsTheBodyOnly(DirectRoute):
    body_model = _Body
    inputs = frozenset({"body:body"})

    async def direct(self, request: Request, body: Any) -> Response:
        return Response()


async def _endpoint(body: _Body, write: WriteDep) -> Response:
    return Response()


def test_a_direct_route_refuses_to_start_when_its_inputs_changed():
    # What the guard compares: every level, parameters and dependencies alike.
    plain = APIRouter(dependencies=[Depends(require_reader)])
    plain.add_api_route("/y", _endpoint, methods=["POST"])
    assert declared_inputs(plain.routes[0].dependant) == {  # type: ignore[attr-defined]
        "body:body",
        "depends:require_reader",
        "depends:get_caller",
        "depends:HTTPBearer",
        "depends:get_now",
        "depends:get_write",
    }
    router = APIRouter(dependencies=[Depends(require_reader)])
    with pytest.raises(RuntimeError, match="update its direct"):
        router.add_api_route(
            "/x", _endpoint, methods=["POST"], route_class_override=_ReadsTheBodyOnly
        )


def test_the_lookups_resolve_no_dependency_through_fastapi(make_client):
    counted = _Counted()
    client = make_client()
    event = client.post(f"{API}/event", json=event_body()).json()["event"]
    lookups = {
        "open deployment": f"{API}/events/search?service=api&type=deployment&per_page=50",
        "by FastAPI": f"{API}/events/search?service=api&type=deployment&per_page=50&unread=1",
        "event": f"{API}/event/{event['metadata']['id']}",
    }
    resolved = {}
    client.portal.call(sys.setprofile, counted)
    try:
        for name, path in lookups.items():
            with counted.counting() as calls:
                assert client.get(path).status_code == 200
            resolved[name] = calls["solve_dependencies"]
    finally:
        client.portal.call(sys.setprofile, None)
    assert resolved == {"open deployment": 0, "by FastAPI": resolved["by FastAPI"], "event": 0}
    assert resolved["by FastAPI"] >= 4, resolved


# ------------------------------------------------------------ POST /event/{id}/close
CLOSES = {
    "valid": json.dumps({"status": "success", "message": "done in 3s"}).encode(),
    "failure, no message": json.dumps({"status": "failure"}).encode(),
    "not JSON": b'{"status": ',
    "not UTF-8": b'{"status": "\xff"}',
    "a list": b"[]",
    "empty": b"",
    "a wrong enum": json.dumps({"status": "nope"}).encode(),
    "a status that does not close": json.dumps({"status": "start"}).encode(),
    "a message too long": json.dumps({"status": "success", "message": "x" * 20_001}).encode(),
}


def _deploys(client: Any, count: int, headers: dict[str, str] | None = None) -> list[str]:
    """``count`` deployments that start (each of its own service, so each takes its lock)."""
    ids = []
    for _ in range(count):
        body = event_body(status="start", service=f"close-{uuid.uuid4().hex[:8]}")
        answer = client.post(f"{API}/event", json=body, headers=headers or {})
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["event"]["metadata"]["id"])
    return ids


def _masked(text: str) -> str:
    """An answer with the names that differ between the two events (their services, ids
    and locks) masked."""
    text = re.sub(r"close-[0-9a-f]{8}", "close-*", text)
    return re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", text)


def _same_close(direct: Any, standard: Any) -> None:
    """As ``_same``, for closes of two like events (of two services, at two moments)."""
    assert direct.status_code == standard.status_code, (direct.text, standard.text)
    if direct.status_code != 200:
        assert _masked(direct.text) == _masked(standard.text)
        return
    ours, theirs = direct.json()["event"]["attributes"], standard.json()["event"]["attributes"]
    assert ours["endDate"] and theirs["endDate"]
    differ = {"endDate", "service"}
    assert {k: v for k, v in ours.items() if k not in differ} == {
        k: v for k, v in theirs.items() if k not in differ
    }


def _close_both_ways(
    client: Any, ids: list[str], content: bytes, headers: dict[str, str]
) -> list[Any]:
    """The same close of two like events, one through each path."""
    return [
        client.post(f"{API}/event/{event_id}/close", content=content, headers={**headers, **kind})
        for event_id, kind in zip(ids, (DIRECT, STANDARD), strict=True)
    ]


@pytest.mark.parametrize("case", list(CLOSES))
def test_a_close_answers_as_fastapis_handler_does(make_client, case):
    client = make_client()
    _same_close(*_close_both_ways(client, _deploys(client, 2), CLOSES[case], {}))


@pytest.mark.parametrize(
    "spelling", ["upper case", "no hyphens", "braces", "not a uuid", "missing"]
)
def test_a_close_of_any_id_answers_as_fastapis_handler_does(make_client, spelling):
    client = make_client()
    ids = _deploys(client, 2)
    written = {
        "upper case": [i.upper() for i in ids],
        "no hyphens": [i.replace("-", "") for i in ids],
        "braces": ["{" + i + "}" for i in ids],
        "not a uuid": ["deploy-1", "deploy-1"],
        "missing": ["0d6e9160-fdf3-448c-8bcb-7eee98c6ca1d"] * 2,
    }[spelling]
    _same_close(*_close_both_ways(client, written, CLOSES["valid"], {}))


def test_a_repeated_close_key_answers_as_fastapis_handler_does(make_client):
    client = make_client()
    ids = _deploys(client, 2)
    for event_id, kind in zip(ids, (DIRECT, STANDARD), strict=True):
        headers = {**kind, "Idempotency-Key": f"close-{event_id}"}
        path = f"{API}/event/{event_id}/close"
        closed = client.post(path, content=CLOSES["valid"], headers=headers)
        replayed = client.post(path, content=CLOSES["valid"], headers=headers)
        assert closed.status_code == 200, closed.text
        assert replayed.headers.get("Idempotent-Replayed") == "true"
        assert replayed.json() == closed.json()
    other = CLOSES["failure, no message"]
    _same_close(*_close_both_ways(client, ids, other, {"Idempotency-Key": "close-reused"}))


@pytest.mark.parametrize("public_reads", [True, False])
def test_the_access_rules_refuse_a_close_as_fastapis_handler_does(make_client, public_reads):
    client = make_client(auth=True, admin_token="admin-secret", public_reads=public_reads)
    owner = _token(client)  # opens the deployments: their locks are its own
    callers = _refused_callers(client) | {
        "another token (not the lock's)": _token(client),
        "the admin without a reason": ADMIN,
    }
    for caller, headers in callers.items():
        for body in (CLOSES["valid"], CLOSES["a wrong enum"]):
            ids = _deploys(client, 2, owner)
            direct, standard = _close_both_ways(client, ids, body, headers)
            _same_close(direct, standard)
            assert direct.status_code in (400, 401, 403), (caller, direct.text)
    ids = _deploys(client, 2, owner)  # the owner's own locks: it may close them
    _same_close(*_close_both_ways(client, ids, CLOSES["valid"], owner))


def test_a_close_resolves_no_dependency_through_fastapi(make_client):
    counted = _Counted()
    client = make_client()
    client.portal.call(sys.setprofile, counted)  # the app's event loop thread
    try:
        resolved = {}
        for name, kind in (("direct", DIRECT), ("standard", STANDARD)):
            ids = _deploys(client, 5)
            with counted.counting() as calls:
                for event_id in ids:
                    answer = client.post(
                        f"{API}/event/{event_id}/close", content=CLOSES["valid"], headers=kind
                    )
                    assert answer.status_code == 200, answer.text
            resolved[name] = calls["solve_dependencies"] / len(ids)
    finally:
        client.portal.call(sys.setprofile, None)
    assert resolved["standard"] >= 5, resolved
    assert resolved["direct"] == 0, resolved
