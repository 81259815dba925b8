"""The real process: ``python -m tracker_server`` on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import API, event_body
from tests.support.servers import free_port, run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tracker.db'}"
    return request.getfixturevalue("postgres_database_url")


def audit_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_a_deployment_through_the_real_process(served_url, tmp_path):
    service = f"svc-{tmp_path.name[-12:]}"
    with run_server(served_url, log_dir=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            health = http.get("/health")
            assert health.json()["status"] == "ok"
            assert health.headers["x-tracker-server"] == "tracker-ci/0.1.0"
            started = http.post(f"{API}/event", json=event_body(service=service, status="start"))
            assert started.status_code == 200, started.text
            event = started.json()["event"]
            refused = http.post(f"{API}/event", json=event_body(service=service, status="start"))
            assert refused.status_code == 409
            body = {
                "id": event["metadata"]["id"],
                "title": event["title"],
                "attributes": event["attributes"] | {"status": "success"},
                "links": event["links"],
            }
            finished = http.put(f"{API}/event", json=body).json()["event"]
            assert finished["metadata"]["duration"].endswith("s")
            metrics = http.get("/metrics").text
            assert (
                f'tracker_event_status_total{{environment="production",service="{service}",'
                f'status="success"}} 1'
            ) in metrics
            assert "tracker_event_duration_seconds_count 1" in metrics
            assert http.get("/openapi.json").json()["info"]["version"] == "0.1.0"
            assert "swagger" in http.get("/docs").text.lower()
        process = server.process
    assert process.returncode == 0  # SIGTERM is a graceful shutdown
    log = server.log()
    assert f"listening on {server.url}" in log
    lines = audit_lines(log)
    created = [line for line in lines if line["msg"] == "event created"]
    assert len(created) == 1
    assert set(created[0]) == {
        "time",
        "level",
        "msg",
        "title",
        "message",
        "priority",
        "environment",
        "owner",
        "impact",
        "service",
        "status",
        "type",
        "pull_request",
        "id",
        "created_at",
    }
    assert created[0]["level"] == "INFO" and created[0]["service"] == service
    locks = [line for line in lines if line["msg"] in ("lock created", "lock deleted")]
    assert [line["msg"] for line in locks] == ["lock created", "lock deleted"]
    assert {"service", "environment", "resource", "who", "id", "event_id"} <= set(locks[0])
    assert locks[0]["event_id"] == event["metadata"]["id"]


def test_the_database_url_comes_from_the_environment(tmp_path):
    port = free_port()
    database = tmp_path / "from-env.db"
    env = {**os.environ, "TRACKER_DATABASE_URL": f"sqlite:///{database}", "TRACKER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker_server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(healthy, message="the server started")
        assert database.exists()
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--auth"], 2, "no admin token"),
        (["--log-level", "loud"], 2, "--log-level"),
        (["--port", "http"], 2, "--port"),
        (["--database-url", "mysql://h/db", "--port", "0"], 2, "unsupported database"),
    ],
)
def test_bad_options_exit_with_a_clear_message(args, status, message):
    result = subprocess.run(
        [sys.executable, "-m", "tracker_server", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.unit
def test_the_command_module_imports_only_click():
    code = (
        "import sys, tracker_server.main; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'pydantic_settings', "
        "'alembic', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent,
    )
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.unit
def test_help_lists_every_option_with_its_variable():
    from click.testing import CliRunner
    from tracker_server.main import serve_command

    result = CliRunner().invoke(serve_command, ["--help"])
    assert result.exit_code == 0, result.output
    for option in (
        "--host",
        "--port",
        "--database-url",
        "--direct-database-url",
        "--auth / --no-auth",
        "--admin-token",
        "--public-reads / --no-public-reads",
        "--max-body-bytes",
        "--log-level",
    ):
        assert option in result.output


def test_a_port_in_use_exits_1_with_one_clear_line(tmp_path):
    """uvicorn's own code (3) would read as "lock held" to tracker-ci's users."""
    with run_server(f"sqlite:///{tmp_path / 'first.db'}", log_dir=tmp_path) as first:
        port = first.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracker_server",
                "--port",
                port,
                "--database-url",
                f"sqlite:///{tmp_path / 'second.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
