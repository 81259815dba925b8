"""``/metrics`` through prometheus-client: its own parser reads every family back, with
every name, label and bucket dashboards query; the ``service`` label is bounded."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tracker_server.metrics import METRIC_NAMES, OTHER, Metrics

from tests.server.helpers import create_event

pytestmark = pytest.mark.server


def test_every_family_parses_back_with_its_type(client) -> None:
    create_event(client, service='we"ird\nname\\', status="success")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    # The parser names a counter without its _total; the exposition's names are ours.
    names = {f.name + "_total" if f.type == "counter" else f.name for f in families.values()}
    assert names == set(METRIC_NAMES)
    types = {name: family.type for name, family in families.items()}
    assert types["tracker_event_status"] == "counter"
    assert types["tracker_event_duration_seconds"] == "histogram"
    assert types["tracker_locks_held"] == "gauge"
    (sample,) = [s for s in families["tracker_deployments"].samples if s.name.endswith("_total")]
    assert sample.labels == {
        "service": 'we"ird\nname\\',  # escaped in the text, read back whole
        "environment": "production",
        "status": "success",
    }
    buckets = [
        s.labels["le"]
        for s in families["tracker_lead_time_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == ["3600", "14400", "86400", "259200", "604800", "1209600", "2592000", "+Inf"]
    assert "_created" not in response.text


def test_the_service_label_is_capped_with_an_other_bucket() -> None:
    metrics = Metrics(max_services=2)
    for service in ("a", "b", "c", "d", "a"):
        metrics.count_deployment(service=service, environment="production", status="success")
    text = metrics.render()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "tracker_deployments"]
    counted = {s.labels["service"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert counted == {"a": 2.0, "b": 1.0, OTHER: 2.0}
