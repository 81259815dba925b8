"""A deploy as a trace: one OTLP/HTTP trace per ``deploy run`` when OpenTelemetry is set up.

The standard variables decide: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns it on, ``OTEL_SDK_DISABLED=true`` off, and
the exporter reads its headers, timeout and compression from the others. The trace has a
root span for the deployment and child spans for the lock wait and the command.

Names follow OpenTelemetry's semantic conventions (their constants): the resource, once,
carries ``service.name``, ``deployment.environment.name``, ``vcs.ref.head.revision`` and,
in GitHub Actions or GitLab CI, ``cicd.pipeline.name``, ``cicd.pipeline.run.id`` and
``cicd.pipeline.task.name``; the root span ``deployment.id`` (the Tracker event) and
``deployment.status``. A span that fails has the error status: the deployment when it
ends in failure, the lock wait when it raises, the command when it exits non-zero (with
``process.exit.code``). The command span names only the executable
(``process.executable.name``): its arguments may hold secrets, so ``process.command_args``
is exported only with ``TRACKER_TRACE_COMMAND_ARGS=true``.

The OpenTelemetry SDK (``pip install 'tracker-ci[otel]'``) is imported only when tracing
is on, so ``tracker-ci --help`` and untraced deploys never load it. The provider is the
deploy's own (never the process-global one), and it is flushed when the deploy ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_ci.deploy import Deployment

__all__ = ["DeployTrace", "NoTrace", "SpanOutcome", "deploy_trace", "tracing_enabled"]

#: Where CI systems put the revision being deployed.
REVISION_VARIABLES = ("TRACKER_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA")
#: The CI run, by convention name: the first variable set wins (GitHub, then GitLab).
PIPELINE_VARIABLES = {
    "cicd.pipeline.name": ("GITHUB_WORKFLOW", "CI_PIPELINE_NAME"),
    "cicd.pipeline.run.id": ("GITHUB_RUN_ID", "CI_PIPELINE_ID"),
    "cicd.pipeline.task.name": ("GITHUB_JOB", "CI_JOB_NAME"),
}
#: The opt-in that exports the command's arguments.
COMMAND_ARGS_VARIABLE = "TRACKER_TRACE_COMMAND_ARGS"


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when an OTLP endpoint is set and the SDK is not disabled."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def revision(environ: Mapping[str, str] | None = None) -> str:
    """The revision being deployed, from the CI's variables ("" when unknown)."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in REVISION_VARIABLES if env.get(name)), "")


def pipeline(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CI run's ``cicd.pipeline.*`` attributes that are known."""
    env = os.environ if environ is None else environ
    found = {}
    for key, names in PIPELINE_VARIABLES.items():
        value = next((env[name] for name in names if env.get(name)), "")
        if value:
            found[key] = value
    return found


def command_attributes(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> dict:
    """The command span's attributes: its executable's name; its arguments when opted in."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {"process.executable.name": os.path.basename(argv[0]) if argv else ""}
    if env.get(COMMAND_ARGS_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
        found["process.command_args"] = list(argv)
    return found


class SpanOutcome:
    """How a span ended, told by the code it wraps (nothing when tracing is off)."""

    def __init__(self, span: Any = None) -> None:
        self.span = span

    def exit_code(self, code: int) -> None:
        """The command's exit code: an error status when it is not 0."""
        if self.span is None:
            return
        from opentelemetry.semconv._incubating.attributes.process_attributes import (
            PROCESS_EXIT_CODE,
        )
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute(PROCESS_EXIT_CODE, code)
        if code != 0:
            self.span.set_status(Status(StatusCode.ERROR, f"exited with code {code}"))


class NoTrace:
    """Tracing is off: every span is a no-op."""

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[SpanOutcome]:
        """Nothing."""
        return contextlib.nullcontext(SpanOutcome())


def _resource_attributes(deployment: Deployment) -> dict[str, str]:
    from opentelemetry.semconv._incubating.attributes.deployment_attributes import (
        DEPLOYMENT_ENVIRONMENT_NAME,
    )
    from opentelemetry.semconv._incubating.attributes.vcs_attributes import (
        VCS_REF_HEAD_REVISION,
    )
    from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

    found = {
        SERVICE_NAME: deployment.service,
        DEPLOYMENT_ENVIRONMENT_NAME: deployment.environment.value,
    }
    if revision():
        found[VCS_REF_HEAD_REVISION] = revision()
    return {**found, **pipeline()}


class DeployTrace:
    """The spans of one deployment, exported over OTLP/HTTP when it ends."""

    def __init__(self, deployment: Deployment) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.deployment = deployment
        # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read too; ours win.
        self.provider = TracerProvider(resource=Resource.create(_resource_attributes(deployment)))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("tracker-ci")
        self.root: Any = None

    def _close_root(self, root: Any) -> None:
        from opentelemetry.semconv._incubating.attributes.deployment_attributes import (
            DEPLOYMENT_ID,
            DEPLOYMENT_STATUS,
            DeploymentStatusValues,
        )
        from opentelemetry.trace import Status, StatusCode

        state = self.deployment.last_state
        if state is None:
            return
        root.set_attribute(DEPLOYMENT_ID, state.event_id)
        root.set_attribute("tracker.event.id", state.event_id)
        root.set_attribute("tracker.deployment.status", state.status)
        if state.status == "success":
            root.set_attribute(DEPLOYMENT_STATUS, DeploymentStatusValues.SUCCEEDED.value)
        elif state.status == "failure":
            root.set_attribute(DEPLOYMENT_STATUS, DeploymentStatusValues.FAILED.value)
            root.set_status(Status(StatusCode.ERROR, state.detail or "failed"))

    @contextlib.contextmanager
    def deployment_span(self) -> Iterator[DeployTrace]:
        """The root span: the whole deploy; an error when it ends in failure."""
        name = f"deploy {self.deployment.service} to {self.deployment.environment.value}"
        try:
            with self.tracer.start_as_current_span(name) as root:
                self.root = root
                try:
                    yield self
                finally:
                    self._close_root(root)
        finally:
            self.provider.shutdown()  # flushes the batch

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[SpanOutcome]:
        """A child span of the deployment (an error when the block raises); ``command=``
        becomes the command's convention attributes."""
        argv = attributes.pop("command", None)
        values = command_attributes(argv) if argv is not None else {}
        for key, value in attributes.items():
            is_list = isinstance(value, Sequence) and not isinstance(value, str)
            values[f"tracker.{key}"] = list(value) if is_list else value
        with self.tracer.start_as_current_span(name, attributes=values) as span:
            yield SpanOutcome(span)


@contextlib.contextmanager
def deploy_trace(deployment: Deployment) -> Iterator[DeployTrace | NoTrace]:
    """The deployment's trace while the block runs (a no-op one when tracing is off)."""
    if not tracing_enabled():
        yield NoTrace()
        return
    try:
        trace = DeployTrace(deployment)
    except ImportError:
        print(
            "tracker-ci: OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not "
            "installed: pip install 'tracker-ci[otel]' (deploying without a trace)",
            file=sys.stderr,
        )
        yield NoTrace()
        return
    with trace.deployment_span():
        yield trace
