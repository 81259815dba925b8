"""The action's deploy exports its OTLP trace when the job sets the OpenTelemetry variables
(the emulated runner, the real bundled server, a loopback collector decoding protobuf)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.action.emulator import Job, event_payloads
from tests.support.names import unique
from tests.support.receivers import run_receiver
from tests.support.servers import RunningServer

# The protobuf decoder comes with the `otel` extra; without it (`.[server,dev]`) the module
# is skipped at collection, with this reason, instead of failing to import.
trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed (pip install -e '.[otel]')",
)

pytestmark = pytest.mark.e2e


def test_the_action_exports_one_trace_per_deploy(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    service = unique("traced-action")
    with run_receiver(lambda _r: (200, None)) as collector:
        job = Job(tmp_path, "push", event_payloads()["push"])
        job.job_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.url
        step = job.run_main(
            {"server-url": sqlite_server.url, "service": service, "command": "echo deploying"}
        )
        assert step.exit_code == 0, step.log
        (request,) = collector.wait_for(1)
    export = trace_service.ExportTraceServiceRequest()
    export.ParseFromString(request.body)
    (resource_spans,) = export.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == service
    assert resource["vcs.ref.head.revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert resource["deployment.environment.name"] == "production"
    spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
    names = sorted(span.name for span in spans)
    assert names == ["command", f"deploy {service} to production", "lock wait"]
    (root,) = [span for span in spans if not span.parent_span_id]
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert attributes["tracker.event.id"] == step.outputs["event-id"]
    assert attributes["tracker.deployment.status"] == "success"
