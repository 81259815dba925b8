"""A deploy as a trace: one OTLP/HTTP trace per ``deploy run`` when OpenTelemetry is set up.

The standard variables decide: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns it on, ``OTEL_SDK_DISABLED=true`` off, and
the exporter reads its headers, timeout and compression from the others. The trace has a
root span for the deployment and child spans for the lock wait and the command, with
``service.name``, ``deployment.environment``, ``vcs.revision`` and the Tracker event id.

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

__all__ = ["DeployTrace", "NoTrace", "deploy_trace", "tracing_enabled"]

#: Where CI systems put the revision being deployed.
REVISION_VARIABLES = ("TRACKER_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA")


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


class NoTrace:
    """Tracing is off: every span is a no-op."""

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[None]:
        """Nothing."""
        return contextlib.nullcontext()


class DeployTrace:
    """The spans of one deployment, exported over OTLP/HTTP when it ends."""

    def __init__(self, deployment: Deployment) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.deployment = deployment
        self.attributes: dict[str, str] = {
            "service.name": deployment.service,
            "deployment.environment": deployment.environment.value,
        }
        if revision():
            self.attributes["vcs.revision"] = revision()
        # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read too; ours win.
        self.provider = TracerProvider(resource=Resource.create(self.attributes))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("tracker-ci")
        self.root: Any = None

    @contextlib.contextmanager
    def deployment_span(self) -> Iterator[DeployTrace]:
        """The root span: the whole deploy; an error when it ends in failure."""
        from opentelemetry.trace import Status, StatusCode

        name = f"deploy {self.deployment.service} to {self.deployment.environment.value}"
        try:
            with self.tracer.start_as_current_span(name, attributes=self.attributes) as root:
                self.root = root
                try:
                    yield self
                finally:
                    state = self.deployment.last_state
                    if state is not None:
                        root.set_attribute("tracker.event.id", state.event_id)
                        root.set_attribute("tracker.deployment.status", state.status)
                        if state.status == "failure":
                            root.set_status(Status(StatusCode.ERROR, state.detail or "failed"))
        finally:
            self.provider.shutdown()  # flushes the batch

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        """A child span of the deployment."""
        values = {
            f"tracker.{key}": list(value) if isinstance(value, Sequence) else value
            for key, value in attributes.items()
            if not isinstance(value, str)
        }
        values.update({f"tracker.{k}": v for k, v in attributes.items() if isinstance(v, str)})
        with self.tracer.start_as_current_span(name, attributes={**self.attributes, **values}):
            yield


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
