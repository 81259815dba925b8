"""deploy/: the compose file validates against the Compose specification's schema and the
Kubernetes base against the Kubernetes API's schemas (kubernetes-validate), offline; both
say what docs/server.md promises (health checks, secrets, two replicas, one port)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    beside = Path(sys.executable).parent / "check-jsonschema"
    checker = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema (the dev extra) is not installed")
    command = [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_file_runs_the_server_target_on_a_healthy_postgres_with_secrets() -> None:
    compose = load(COMPOSE)
    server, db = compose["services"]["server"], compose["services"]["db"]
    assert server["build"]["target"] == "server"
    assert "AS server" in (ROOT / server["build"]["dockerfile"]).read_text()
    assert "/health" in " ".join(server["healthcheck"]["test"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"] and "pgdata" in compose["volumes"]
    assert "/run/secrets/admin_token" in " ".join(server["entrypoint"])
    assert set(server["secrets"]) == {"admin_token", "postgres_password"}
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert all("file" in secret for secret in compose["secrets"].values())
    assert "TRACKER_ADMIN_TOKEN" not in server["environment"]


def resources() -> list[dict[str, Any]]:
    kustomization = load(KUBERNETES / "kustomization.yaml")
    return [load(KUBERNETES / name) for name in kustomization["resources"]]


def test_every_kubernetes_resource_validates_strictly() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (the dev extra) is not installed"
    )
    for resource in resources():
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_kustomize_build_validates_when_kubectl_is_here() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (the dev extra) is not installed"
    )
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build is not rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    built = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(built) == len(resources())
    for resource in built:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        assert resource["metadata"]["labels"]["app.kubernetes.io/name"] == "tracker-server"


def test_the_deployment_runs_two_replicas_probed_on_health_with_secrets() -> None:
    by_kind = {resource["kind"]: resource for resource in resources()}
    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    env = {item["name"]: item for item in container["env"]}
    for name in ("TRACKER_DATABASE_URL", "TRACKER_ADMIN_TOKEN", "TRACKER_DIRECT_DATABASE_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "tracker-server"
    assert env["TRACKER_AUTH"]["value"] == "true"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert by_kind["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    [rule] = by_kind["NetworkPolicy"]["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
