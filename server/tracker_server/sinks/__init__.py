"""Where deliveries go: one module per receiver, each a :class:`Sink` (see base.py).

:data:`SINKS` maps a webhook's ``kind`` to its sink; a new receiver is one module and one
row. Sinks are imported when the dispatcher first sends (PyGithub only for GitHub).
"""

from __future__ import annotations

from importlib import import_module

from tracker_server.sinks.base import Sink

#: Webhook kind -> "module:class" of its sink.
SINKS: dict[str, str] = {
    "generic": "tracker_server.sinks.generic:GenericSink",
    "slack": "tracker_server.sinks.slack:SlackSink",
    "github-deployments": "tracker_server.sinks.github:GitHubDeploymentsSink",
    "grafana": "tracker_server.sinks.grafana:GrafanaSink",
    "influx": "tracker_server.sinks.influx:InfluxSink",
}


def sink_for(kind: str) -> Sink:
    """The sink of a webhook kind."""
    module_name, _, class_name = SINKS[kind].partition(":")
    sink: Sink = getattr(import_module(module_name), class_name)()
    return sink
