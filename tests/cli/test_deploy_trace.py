"""``deploy run`` as an OTLP trace: a loopback collector decodes the protobuf spans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    found: dict = {}
    for a in span.attributes:
        kind = a.value.WhichOneof("value")
        if kind == "array_value":
            found[a.key] = [v.string_value for v in a.value.array_value.values]
        else:
            found[a.key] = getattr(a.value, kind)
    return found


def _deploy_run(invoke: Invoke, service: str, exit_code: int, **env: str) -> tuple[dict, dict]:
    with run_receiver(lambda _r: (200, None)) as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "GITHUB_SHA": "0123abc", **env}
        result = invoke(
            "deploy", "run", "--service", service, "--environment", "UAT", "--",
            sys.executable, "-c", f"raise SystemExit({exit_code})", "--token=s3cr3t",
            env=env,
        )  # fmt: skip
        assert result.exit_code == exit_code, result.output
        resource, spans = _spans(collector.wait_for(1))
    return resource, {span.name: span for span in spans}


@pytest.mark.parametrize("exit_code", [0, 3])
def test_deploy_run_exports_one_trace(invoke: Invoke, exit_code: int) -> None:
    from opentelemetry.semconv._incubating.attributes import (
        cicd_attributes,
        deployment_attributes,
        process_attributes,
        vcs_attributes,
    )
    from opentelemetry.semconv.attributes import service_attributes

    service = unique("traced")
    resource, by_name = _deploy_run(
        invoke, service, exit_code, GITHUB_RUN_ID="42", GITHUB_WORKFLOW="deploy"
    )
    # The resource, once, with the conventions' names (their constants).
    sdk = ("telemetry.sdk.", "service.instance.id")  # what the SDK adds itself
    assert {k: v for k, v in resource.items() if not k.startswith(sdk)} == {
        service_attributes.SERVICE_NAME: service,
        deployment_attributes.DEPLOYMENT_ENVIRONMENT_NAME: "UAT",
        vcs_attributes.VCS_REF_HEAD_REVISION: "0123abc",
        cicd_attributes.CICD_PIPELINE_NAME: "deploy",
        cicd_attributes.CICD_PIPELINE_RUN_ID: "42",
    }
    assert set(by_name) == {f"deploy {service} to UAT", "lock wait", "command"}
    root = by_name[f"deploy {service} to UAT"]
    assert root.parent_span_id == b""
    assert len({span.trace_id for span in by_name.values()}) == 1
    for child in ("lock wait", "command"):
        assert by_name[child].parent_span_id == root.span_id
        assert root.start_time_unix_nano <= by_name[child].start_time_unix_nano
        assert by_name[child].end_time_unix_nano <= root.end_time_unix_nano
    assert by_name["lock wait"].end_time_unix_nano <= by_name["command"].start_time_unix_nano
    root_attributes = _attributes(root)
    assert len(root_attributes[deployment_attributes.DEPLOYMENT_ID]) == 36
    assert root_attributes["tracker.event.id"] == root_attributes["deployment.id"]
    assert service_attributes.SERVICE_NAME not in root_attributes  # the resource's, once
    # Only the executable: the arguments may hold secrets ("--token=s3cr3t").
    command = _attributes(by_name["command"])
    assert command == {
        process_attributes.PROCESS_EXECUTABLE_NAME: Path(sys.executable).name,
        process_attributes.PROCESS_EXIT_CODE: exit_code,
    }
    assert by_name["lock wait"].status.code == 0  # unset
    if exit_code == 0:
        assert root_attributes["tracker.deployment.status"] == "success"
        assert root_attributes[deployment_attributes.DEPLOYMENT_STATUS] == "succeeded"
        assert root.status.code == by_name["command"].status.code == 0  # unset
    else:
        assert root_attributes["tracker.deployment.status"] == "failure"
        assert root_attributes[deployment_attributes.DEPLOYMENT_STATUS] == "failed"
        assert root.status.code == by_name["command"].status.code == 2  # error
        assert by_name["command"].status.message == "exited with code 3"


def test_the_command_arguments_are_exported_only_when_opted_in(invoke: Invoke) -> None:
    _resource, by_name = _deploy_run(invoke, unique("traced"), 0, TRACKER_TRACE_COMMAND_ARGS="true")
    assert _attributes(by_name["command"])["process.command_args"] == [
        sys.executable, "-c", "raise SystemExit(0)", "--token=s3cr3t",
    ]  # fmt: skip


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
