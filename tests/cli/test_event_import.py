"""``tracker-ci event import`` against real server processes: JSON lines and copies from
another server (ours, or an upstream-shaped one on loopback), each event exactly once with
its real dates and id, after a re-run, a --limit or a cut connection resumed."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke
from tests.support.names import unique
from tests.support.receivers import Received, run_receiver
from tests.support.servers import RunningServer, run_server
from tracker_ci.models import format_timestamp

pytestmark = pytest.mark.e2e

API = "/api/v1alpha1"
START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return format_timestamp(moment)


def source_events(count: int, *, service: str = "api") -> list[dict[str, Any]]:
    """Upstream-shaped events with history: every other one a deployment that links the
    one before it (relatedId), each with its changelog and duration."""
    events: list[dict[str, Any]] = []
    for index in range(count):
        created = START + timedelta(minutes=7 * index, microseconds=index)
        related = events[-1]["metadata"]["id"] if index % 2 else ""
        events.append(
            {
                "title": f"deploy #{index}",
                "attributes": {
                    "message": f"release {index}",
                    "source": "github",
                    "type": "deployment",
                    "priority": "P3",
                    "relatedId": related,
                    "service": service,
                    "status": "success" if index % 2 else "start",
                    "environment": "production",
                    "impact": False,
                    "startDate": stamp(created),
                    "endDate": None,
                    "owner": "alice",
                    "stakeHolders": [],
                    "notification": False,
                    "notifications": [],
                },
                "links": {"pullRequestLink": "", "ticket": f"OPS-{index}"},
                "metadata": {
                    "createdAt": stamp(created),
                    "duration": f"{60 + index}.5s" if index % 2 else None,
                    "id": str(uuid.uuid4()),
                    "slackId": "",
                },
                "changelog": [
                    {
                        "timestamp": stamp(created),
                        "user": "alice",
                        "changeType": "created",
                        "field": "",
                        "oldValue": "",
                        "newValue": "",
                        "comment": "Event created",
                    }
                ],
            }
        )
    return events


def all_events(url: str, service: str | None = None) -> list[dict[str, Any]]:
    """Every event of a server of ours (of ``service`` only, if given), by page."""
    found: list[dict[str, Any]] = []
    page = 1
    route, where = ("/events/search", {"service": service}) if service else ("/events/list", {})
    while True:
        answer = httpx.get(
            f"{url}{API}{route}", params={**where, "per_page": 1000, "page": page}
        ).json()
        found += answer["events"]
        if len(answer["events"]) < 1000:
            return found
        page += 1


def by_id(events: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None, list[Any]]]:
    """What an import must keep of each event: title, createdAt, duration, changelog."""
    kept = {}
    for event in events:
        metadata = event["metadata"]
        changelog = [(e["changeType"], e["timestamp"], e["comment"]) for e in event["changelog"]]
        kept[metadata["id"]] = (
            event["title"],
            metadata["createdAt"],
            metadata["duration"],
            changelog,
        )
    return kept


def write_lines(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    return path


def seed(url: str, events: list[dict[str, Any]], token: str = "") -> None:
    """Put these events (history) into a server of ours."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for start in range(0, len(events), 1000):
        answer = httpx.post(
            f"{url}{API}/events/batch",
            json={"events": events[start : start + 1000]},
            headers=headers,
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["refused"] == 0, answer.text[:500]


@pytest.fixture(scope="module")
def target_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The server imported into, shared by the module: a server start costs seconds, and
    each test imports its own service's events (``service``) and reads back only those."""
    folder = tmp_path_factory.mktemp("import-target")
    with run_server(f"sqlite:///{folder / 'target.db'}", log_dir=folder) as server:
        yield server


@pytest.fixture
def target(target_server: RunningServer, tmp_path: Path, monkeypatch: Any) -> Invoke:
    """The CLI bound to the module's server of ours, run from an empty directory."""
    monkeypatch.chdir(tmp_path)
    return Invoke(target_server.url, tmp_path)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[RunningServer]:
    """Another server of ours, the one copied from."""
    with run_server(f"sqlite:///{tmp_path / 'source.db'}", log_dir=tmp_path) as server:
        yield server


# ------------------------------------------------------------------ JSON lines
def test_a_file_is_imported_with_its_dates_and_ids_and_a_rerun_replays(
    target: Invoke, tmp_path: Path, service: str
) -> None:
    events = source_events(30, service=service)
    path = write_lines(tmp_path / "events.jsonl", events)
    result = target("event", "import", str(path), "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 30 events: 30 created, 0 replayed, 0 refused\n"
    assert "tracker-ci: imported 8 events: 8 created" in result.stderr
    assert by_id(all_events(target.url, service)) == by_id(events)
    # An imported deployment "start" is history: it holds no lock.
    locks = httpx.get(f"{target.url}{API}/locks/list").json()["locks"]
    assert [lock for lock in locks if lock["service"] == service] == []

    again = target("event", "import", str(path))
    assert again.exit_code == 0, again.output
    assert again.stdout == "imported 30 events: 0 created, 30 replayed, 0 refused\n"
    assert len(all_events(target.url, service)) == 30


def test_stdin_takes_event_answers_too_and_json_output(target: Invoke, service: str) -> None:
    events = source_events(3, service=service)
    lines = "\n".join(json.dumps({"event": event}) for event in events) + "\n\n"
    result = target("--output", "json", "event", "import", "-", input=lines)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "read": 3,
        "created": 3,
        "replayed": 0,
        "refused": 0,
        "refusal_code": 0,
        "complete": True,
    }
    assert by_id(all_events(target.url, service)) == by_id(events)


def test_a_bad_line_stops_after_the_lines_before_it_and_resume_goes_on(
    target: Invoke, tmp_path: Path, service: str
) -> None:
    events = source_events(5, service=service)
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(event) for event in events]
    undated = json.loads(lines[3])
    undated["metadata"]["createdAt"] = None
    path.write_text("\n".join([*lines[:3], json.dumps(undated), lines[4]]) + "\n")
    state = tmp_path / "import.state"

    result = target("event", "import", str(path), "--resume", str(state))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "error: line 4: metadata.createdAt is missing: an import keeps real dates, so every "
        "event needs its createdAt"
    )
    assert len(all_events(target.url, service)) == 3

    path.write_text("\n".join([*lines[:3], "{not json", lines[4]]) + "\n")
    broken = target("event", "import", str(path), "--resume", str(state))
    assert broken.exit_code == 2, broken.output
    assert "error: line 4: not JSON (" in broken.stderr

    path.write_text("\n".join(lines) + "\n")
    resumed = target("event", "import", str(path), "--resume", str(state))
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == "imported 2 events: 2 created, 0 replayed, 0 refused\n"
    assert by_id(all_events(target.url, service)) == by_id(events)
    done = target("event", "import", str(path), "--resume", str(state))
    assert done.exit_code == 0 and "was imported completely" in done.stderr


def test_refused_events_are_named_and_set_the_exit_code(
    target: Invoke, tmp_path: Path, service: str
) -> None:
    events = source_events(3, service=service)
    events[1]["title"] = ""
    result = target("event", "import", str(write_lines(tmp_path / "e.jsonl", events)))
    assert result.exit_code == 2, result.output
    assert "tracker-ci: line 2 refused (400: invalid request: title is required" in result.stderr
    assert result.stdout == "imported 3 events: 2 created, 0 replayed, 1 refused\n"


def test_usage_errors(target: Invoke, tmp_path: Path) -> None:
    neither = target("event", "import")
    assert neither.exit_code == 2 and "give FILE (or - for stdin) or --from URL" in neither.output
    path = write_lines(tmp_path / "e.jsonl", source_events(1))
    state = tmp_path / "s.state"
    state.write_text(json.dumps({"source": "http://elsewhere"}))
    other = target("event", "import", str(path), "--resume", str(state))
    assert other.exit_code == 2 and "records an import of http://elsewhere" in other.stderr


# ------------------------------------------------------------------ copies from a server
def test_a_limited_copy_resumed_gives_each_event_once(
    target: Invoke, source: RunningServer, tmp_path: Path, service: str
) -> None:
    events = source_events(250, service=service)
    seed(source.url, events)
    state = tmp_path / "copy.state"
    copy = ("event", "import", "--from", source.url, "--resume", str(state), "--batch-size", "40")

    partial = target(*copy, "--limit", "130")
    assert partial.exit_code == 0, partial.output
    assert partial.stdout == "imported 130 events: 130 created, 0 replayed, 0 refused\n"
    assert "of 250 events" in partial.stderr
    assert len(all_events(target.url, service)) == 130

    rest = target(*copy)
    assert rest.exit_code == 0, rest.output
    # The page the limit cut is read again: what it had sent replays.
    assert "120 created" in rest.stdout and " 0 refused" in rest.stdout
    assert by_id(all_events(target.url, service)) == by_id(events)

    without_state = target("event", "import", "--from", source.url)
    assert without_state.stdout == "imported 250 events: 0 created, 250 replayed, 0 refused\n"
    assert len(all_events(target.url, service)) == 250


@contextmanager
def cutting_proxy(upstream: str, budget: dict[str, int]) -> Iterator[str]:
    """A loopback proxy of GETs that answers ``budget["answer"]`` requests, then drops
    connections (until the budget is raised)."""

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if budget["answer"] <= 0:
                self.close_connection = True
                self.connection.close()
                return
            budget["answer"] -= 1
            reply = httpx.get(upstream + self.path)
            body = reply.content
            self.send_response(reply.status_code)
            for name in ("Content-Type", "X-Tracker-Server"):
                if name in reply.headers:
                    self.send_header(name, reply.headers[name])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Proxy) as url:
        yield url


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_copy_cut_by_the_network_resumes_without_duplicates(
    target: Invoke, source: RunningServer, tmp_path: Path, service: str
) -> None:
    events = source_events(120, service=service)
    seed(source.url, events)
    state = tmp_path / "copy.state"
    budget = {"answer": 2}
    with cutting_proxy(source.url, budget) as proxy:
        copy = ("event", "import", "--from", proxy, "--resume", str(state), "--batch-size", "50")
        cut = target(*copy)
        assert cut.exit_code == 4, cut.output
        assert "tracker-ci: stopped after 100 events: 100 created" in cut.stderr
        assert f"run again with --resume {state} to go on" in cut.stderr
        assert len(all_events(target.url, service)) == 100

        budget["answer"] = 100
        resumed = target(*copy)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == "imported 20 events: 20 created, 0 replayed, 0 refused\n"
    assert by_id(all_events(target.url, service)) == by_id(events)


@pytest.mark.parametrize(
    ("paging", "requests_made"),
    [
        ("ignored", 1),  # upstream: every event in one answer, whatever per_page says
        ("honoured", 3),  # a source that pages (5 a page) without a cursor
        ("ignored, total too high", 2),  # the same answer twice: the source does not page
    ],
)
def test_a_copy_from_an_upstream_shaped_server(
    target: Invoke, paging: str, requests_made: int, service: str
) -> None:
    events = source_events(12, service=service)

    def upstream(request: Received) -> tuple[int, Any]:
        """Upstream's list: no server header; paged or not as the test says."""
        query = parse_qs(urlsplit(request.path).query)
        answer: dict[str, Any] = {"events": events, "totalCount": len(events)}
        if paging == "honoured":
            size, page = int(query["per_page"][0]), int(query["page"][0])
            answer["events"] = events[(page - 1) * size : page * size]
        elif paging == "ignored, total too high":
            answer["totalCount"] = 100
        return 200, answer

    with run_receiver(upstream) as receiver:
        result = target("event", "import", "--from", receiver.url, "--batch-size", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 12 events: 12 created, 0 replayed, 0 refused\n"
    paths = [request.path for request in receiver.requests]
    assert {path.split("?")[0] for path in paths} == {f"{API}/events/list"}
    assert len(paths) == requests_made
    assert by_id(all_events(target.url, service)) == by_id(events)


def test_an_upstream_target_has_no_batch_endpoint(tmp_path: Path, monkeypatch: Any) -> None:
    class Upstream(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = b'{"code":5,"message":"Not Found","details":[]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    monkeypatch.chdir(tmp_path)
    path = write_lines(tmp_path / "e.jsonl", source_events(2))
    with serving(Upstream) as url:
        result = Invoke(url, tmp_path)("event", "import", str(path))
    assert result.exit_code == 2, result.output
    assert "has no batch endpoint" in result.stderr
    assert "importing needs tracker-ci's bundled server as the target" in result.stderr


def test_an_import_needs_an_admin_token_when_auth_is_on(
    auth_server: RunningServer, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    invoke = Invoke(auth_server.url, tmp_path)
    service = unique("import")
    created = invoke(
        "--token", ADMIN_TOKEN, "--output", "json", "token", "create", "--name", "ci",
        "--service", service,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    scoped = json.loads(created.stdout)["secret"]
    path = write_lines(tmp_path / "e.jsonl", source_events(2, service=service))

    state = str(tmp_path / "import.state")
    refused = invoke("--token", scoped, "event", "import", str(path), "--resume", state)
    assert refused.exit_code == 5, refused.output
    assert "not an admin token: it cannot import history" in refused.stderr
    none = invoke("event", "import", str(path), "--resume", state)
    assert none.exit_code == 5, none.output

    # A refused event keeps the saved position: the resumed run sends it again.
    accepted = invoke("--token", ADMIN_TOKEN, "event", "import", str(path), "--resume", state)
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout == "imported 2 events: 2 created, 0 replayed, 0 refused\n"


def test_batches_shrink_to_the_servers_body_limit(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    events = source_events(40)
    huge = source_events(1)[0]
    huge["attributes"]["message"] = "x" * 19_000  # more than the limit on its own
    events.insert(20, huge)
    path = write_lines(tmp_path / "e.jsonl", events)
    limit = ["--max-body-bytes", "16000"]
    with run_server(f"sqlite:///{tmp_path / 't.db'}", log_dir=tmp_path, extra_args=limit) as small:
        result = Invoke(small.url, tmp_path)("event", "import", str(path))
        assert result.exit_code == 2, result.output
        assert "tracker-ci: line 21 refused (413: request body too large" in result.stderr
        assert result.stdout == "imported 41 events: 40 created, 0 replayed, 1 refused\n"
        assert by_id(all_events(small.url)) == by_id(events[:20] + events[21:])
