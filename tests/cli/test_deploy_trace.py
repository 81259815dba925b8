"""``deploy run`` as an OTLP trace: a loopback collector decodes the protobuf spans."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique
from tests.support.receivers import Received, run_receiver
from tracker_ci.tracing import tracing_enabled

# The protobuf decoder comes with the `otel` extra; without it (`.[server,dev]`) the module
# is skipped at collection, with this reason, instead of failing to import.
trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed (pip install -e '.[otel]')",
)

pytestmark = pytest.mark.e2e


def _spans(requests: list[Received]) -> tuple[dict, list]:
    resource: dict = {}
    spans = []
    for request in requests:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        export = trace_service.ExportTraceServiceRequest()
        export.ParseFromString(request.body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    return resource, spans


def _attributes(span) -> dict:
    return {a.key: a.value.string_value for a in span.attributes}


@pytest.mark.parametrize("exit_code", [0, 3])
def test_deploy_run_exports_one_trace(invoke: Invoke, exit_code: int) -> None:
    service = unique("traced")
    with run_receiver(lambda _r: (200, None)) as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "GITHUB_SHA": "0123abc"}
        result = invoke(
            "deploy",
            "run",
            "--service",
            service,
            "--environment",
            "UAT",
            "--",
            sys.executable,
            "-c",
            f"raise SystemExit({exit_code})",
            env=env,
        )
        assert result.exit_code == exit_code, result.output
        resource, spans = _spans(collector.wait_for(1))
    assert resource["service.name"] == service
    assert resource["deployment.environment"] == "UAT"
    assert resource["vcs.revision"] == "0123abc"
    by_name = {span.name: span for span in spans}
    assert set(by_name) == {f"deploy {service} to UAT", "lock wait", "command"}
    root = by_name[f"deploy {service} to UAT"]
    assert root.parent_span_id == b""
    assert len({span.trace_id for span in spans}) == 1
    for child in ("lock wait", "command"):
        assert by_name[child].parent_span_id == root.span_id
        assert root.start_time_unix_nano <= by_name[child].start_time_unix_nano
        assert by_name[child].end_time_unix_nano <= root.end_time_unix_nano
    assert by_name["lock wait"].end_time_unix_nano <= by_name["command"].start_time_unix_nano
    root_attributes = _attributes(root)
    assert len(root_attributes["tracker.event.id"]) == 36
    assert root_attributes["service.name"] == service
    assert root_attributes["deployment.environment"] == "UAT"
    assert root_attributes["vcs.revision"] == "0123abc"
    command = [
        v.string_value
        for a in by_name["command"].attributes
        if a.key == "tracker.command"
        for v in a.value.array_value.values
    ]
    assert command == [sys.executable, "-c", f"raise SystemExit({exit_code})"]
    if exit_code == 0:
        assert root_attributes["tracker.deployment.status"] == "success"
        assert root.status.code == 0  # unset
    else:
        assert root_attributes["tracker.deployment.status"] == "failure"
        assert root.status.code == 2  # error


def test_tracing_is_off_without_an_endpoint_and_loads_no_sdk() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing_enabled(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    code = (
        "import sys, tracker_ci.deploy, tracker_ci.cli;"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
