"""``tracker-ci catalog`` against the real bundled server: set, get, list, delete,
compliance, and the import of Backstage catalog-info.yaml files; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique
from tracker_ci.commands.catalog import read_backstage

pytestmark = pytest.mark.server


def _json(invoke: Invoke, *args: str) -> object:
    result = invoke("-o", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_set_get_list_delete(invoke: Invoke) -> None:
    name = unique()
    missing = invoke("catalog", "set", name, "--owner", "team-a")
    assert missing.exit_code == 2, missing.output  # a new entry needs a version
    assert "version is required" in missing.stderr
    made = invoke(
        "catalog", "set", name, "--owner", "team-a", "--version", "1.0", "--type", "project",
        "--depends-on", "db", "--depends-on", "cache", "--link", "https://api.example.com",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "owner:" in made.stdout and "team-a" in made.stdout
    # Changing one option keeps the others.
    changed = _json(
        invoke, "catalog", "set", name, "--owner", "team-b", "--lifecycle", "production"
    )
    assert changed["owner"] == "team-b" and changed["lifecycle"] == "production"
    assert changed["dependenciesIn"] == ["db", "cache"] and changed["version"] == "1.0"
    got = invoke("catalog", "get", name)
    assert got.exit_code == 0 and "db,cache" in got.stdout, got.output
    listed = invoke("catalog", "list")
    assert listed.exit_code == 0 and name in listed.stdout, listed.output
    bad_link = invoke("catalog", "set", name, "--link", "javascript:alert(1)")
    assert bad_link.exit_code == 2 and "http(s) URL" in bad_link.stderr, bad_link.output
    deleted = invoke("catalog", "delete", name)
    assert deleted.exit_code == 0, deleted.output
    assert invoke("catalog", "get", name).exit_code == 6
    assert invoke("catalog", "delete", name).exit_code == 6


def test_versions_and_compliance(invoke: Invoke) -> None:
    lib, app = unique("lib"), unique("app")
    made = invoke(
        "catalog", "set", lib, "--owner", "platform", "--version", "2.0", "--type", "package",
        "--available-version", "1.0", "--available-version", "2.0",
        "--latest-version", "2.0", "--reference-version", "2.0",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    entry = _json(invoke, "catalog", "get", lib)
    assert entry["availableVersions"] == ["1.0", "2.0"] and entry["referenceVersion"] == "2.0"
    # A project using lib at 1.0: the CLI sets no usedDeliverables, the API does.
    body = {
        "name": app,
        "owner": "shop",
        "version": "5",
        "type": "project",
        "used_deliverables": [{"name": lib, "type": "package", "version_used": "1.0"}],
    }
    httpx.put(f"{invoke.url}/api/v1alpha1/catalog", json=body).raise_for_status()
    report = invoke("catalog", "compliance", "--type", "package")
    assert report.exit_code == 0, report.output
    line = next(row for row in report.stdout.splitlines() if row.startswith(app))
    assert lib in line and "outdated" in line
    assert "projects compliant" in report.stdout


BACKSTAGE = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {api}
  description: The public API
  annotations:
    github.com/project-slug: acme/api
  links:
    - url: https://api.example.com
      title: Home
    - url: https://grafana.example.com/d/api
      title: RED
      type: dashboard
spec:
  type: service
  lifecycle: production
  owner: group:default/team-a
  dependsOn:
    - component:default/{db}
    - resource:default/users-bucket
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: shop
spec:
  owner: team-a
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {db}
spec:
  type: service
  lifecycle: experimental
  owner: team-b
"""


def test_import_backstage_components(invoke: Invoke, tmp_path: Path) -> None:
    api, db = unique("api"), unique("db")
    path = tmp_path / "catalog-info.yaml"
    path.write_text(BACKSTAGE.format(api=api, db=db), encoding="utf-8")
    assert [c.name for c in read_backstage(path)] == [api, db]  # the System is skipped

    dry = invoke("catalog", "import", str(path), "--dry-run")
    assert dry.exit_code == 0 and f"would import {api} (new)" in dry.stdout, dry.output
    assert invoke("catalog", "get", api).exit_code == 6  # nothing stored

    done = invoke("catalog", "import", str(path), "--version", "3.1")
    assert done.exit_code == 0, done.output
    assert f"imported {api} (new)" in done.stdout
    stored = _json(invoke, "catalog", "get", api)
    assert stored["owner"] == "team-a" and stored["lifecycle"] == "production"
    assert stored["version"] == "3.1" and stored["type"] == "project"
    assert stored["description"] == "The public API"
    assert stored["link"] == "https://api.example.com"
    assert stored["repository"] == "https://github.com/acme/api"
    assert stored["dependenciesIn"] == [db]  # a resource is not a service
    assert stored["dashboardLinks"] == [
        {
            "type": "grafana",
            "name": "RED",
            "url": "https://grafana.example.com/d/api",
            "description": "",
        }
    ]
    dependency = _json(invoke, "catalog", "get", db)
    assert dependency["dependenciesOut"] == [api] and dependency["owner"] == "team-b"

    # Importing again updates, keeps the stored version and what Backstage does not say.
    assert invoke("catalog", "set", api, "--platform", "kubernetes").exit_code == 0
    again = invoke("catalog", "import", str(path))
    assert again.exit_code == 0 and f"imported {api} (updated)" in again.stdout, again.output
    kept = _json(invoke, "catalog", "get", api)
    assert kept["version"] == "3.1" and kept["platform"] == "kubernetes"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: Component\nmetadata: {name: x}\nspec: [\n", "not valid YAML at line"),
        ("kind: Component\nmetadata: {name: x}\nspec: {lifecycle: production}\n", "spec.owner"),
        ("kind: Component\nspec: {owner: a}\n", "metadata.name"),
        ("- just\n- a list\n", "not a Backstage entity"),
        (
            "kind: Component\nmetadata: {name: x, links: [{title: t}]}\nspec: {owner: a}\n",
            "metadata.links[0] has no url",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(
    invoke: Invoke, tmp_path: Path, text: str, fragment: str
) -> None:
    good = tmp_path / "good.yaml"
    name = unique()
    good.write_text(f"kind: Component\nmetadata: {{name: {name}}}\nspec: {{owner: a}}\n")
    bad = tmp_path / "catalog-info.yaml"
    bad.write_text(text, encoding="utf-8")
    result = invoke("catalog", "import", str(good), str(bad))
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and str(bad) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert invoke("catalog", "get", name).exit_code == 6  # nothing stored from good.yaml


def test_a_missing_file_and_a_duplicate_component_exit_2(invoke: Invoke, tmp_path: Path) -> None:
    missing = invoke("catalog", "import", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr, missing.output
    one = tmp_path / "a.yaml"
    one.write_text("kind: Component\nmetadata: {name: twice}\nspec: {owner: a}\n")
    twice = invoke("catalog", "import", str(one), str(one))
    assert twice.exit_code == 2 and "is also in" in twice.stderr, twice.output
