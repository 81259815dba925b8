"""The GitLab docs (docs/gitlab.md, and the README's short section) are tested against the
files they describe.

Its inputs table must match the component's `spec:` header (names, defaults, variables), its
YAML snippets must pass GitLab's schema, and each snippet runs in gitlab-ci-local against the
real server, including from the same project path, ref and URL that the README shows.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.gitlab.gitlab_ci_local import ROOT, GitLabWorkspace
from tests.gitlab.gitlab_files import (
    COMPONENT,
    load_gitlab_yaml,
    load_renderer,
    split_component,
    validate_with_schema,
)
from tests.support.api import deployments, locks_of
from tests.support.servers import RunningServer

README = ROOT / "README.md"
#: The GitLab page: the README keeps a short section whose snippets are this page's.
GITLAB_DOC = ROOT / "docs" / "gitlab.md"
REMOTE_BASE = "https://gitlab.com/tracker-ci/tracker-ci/-/raw/0.1.0/"


def gitlab_section() -> str:
    """docs/gitlab.md between its gitlab section markers."""
    text = GITLAB_DOC.read_text()
    match = re.search(
        r"<!-- section: gitlab -->(.*?)<!-- /section: gitlab -->", text, flags=re.DOTALL
    )
    assert match, "docs/gitlab.md has no gitlab section"
    return match.group(1)


def yaml_snippets() -> list[str]:
    """Every ```yaml block of the section."""
    return re.findall(r"```yaml\n(.*?)```", gitlab_section(), flags=re.DOTALL)


def inputs_table() -> dict[str, dict[str, str]]:
    """Rows of the table whose first column is an input: name -> default, variable."""
    rows = {}
    for line in gitlab_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z-]+`", cells[0]) and cells[1].startswith("`"):
            rows[cells[0].strip("`")] = {
                "default": cells[1].strip("`"),
                "variable": cells[2].strip("`"),
            }
    return rows


def component_spec() -> dict[str, dict]:
    header, _ = split_component(COMPONENT.read_text())
    return load_gitlab_yaml(header)["spec"]["inputs"]


def snippet_id(snippet: str) -> str:
    for kind in ("component", "project", "remote"):
        if re.search(rf"^\s+- {kind}:", snippet, flags=re.MULTILINE):
            file = re.search(r"file: (\S+)", snippet)
            return f"{kind}{':' + file.group(1) if file else ''}"
    return "fragment"


@pytest.mark.unit
def test_the_section_has_a_snippet_per_way_to_include() -> None:
    kinds = {snippet_id(snippet).split(":")[0] for snippet in yaml_snippets()}
    assert kinds == {"component", "project", "remote", "fragment"}


@pytest.mark.unit
def test_inputs_table_matches_the_component_spec() -> None:
    spec = component_spec()
    table = inputs_table()
    assert list(table) == list(spec), "the table lists the inputs in the spec's order"
    render = load_renderer()
    for name, row in table.items():
        expected = render.format_default(spec[name]["default"])
        documented = "" if row["default"] == '""' else row["default"]
        assert documented == expected, f"{name}: README says {row['default']!r}"


@pytest.mark.unit
def test_inputs_table_names_the_variable_each_input_sets() -> None:
    _, body = split_component(COMPONENT.read_text())
    spec = component_spec()
    for name, row in inputs_table().items():
        variable = row["variable"]
        if not variable:
            continue
        default_variable = re.search(
            rf'TRACKER_DEFAULT_(\w+): "\$\[\[ inputs\.{re.escape(name)} \]\]"', body
        )
        if default_variable:
            # The settings snippet turns TRACKER_DEFAULT_X into TRACKER_X.
            assert variable == f"TRACKER_{default_variable.group(1)}", name
            assert f'{variable}="${{{variable}:-${{TRACKER_DEFAULT_' in body, name
        else:
            assert spec[name]["default"] == f"${variable}", name


@pytest.mark.unit
def test_documented_image_is_the_templates_default() -> None:
    _, body = split_component(COMPONENT.read_text())
    image = load_gitlab_yaml(body)["variables"]["TRACKER_CI_IMAGE"]
    assert f"`TRACKER_CI_IMAGE` defaults to `{image}`" in gitlab_section()


@pytest.mark.unit
@pytest.mark.parametrize("index", range(len(yaml_snippets())))
def test_snippet_validates_against_gitlab_schema(tmp_path: Path, index: int) -> None:
    path = tmp_path / "snippet.gitlab-ci.yml"
    path.write_text(yaml_snippets()[index])
    result = validate_with_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def remote_base(gitlab_workspace: GitLabWorkspace) -> Iterator[str]:
    """The released files over HTTP, standing in for gitlab.com's raw URLs."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    handler = functools.partial(QuietHandler, directory=str(gitlab_workspace.upstream_work_tree))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def runnable_pipeline(snippet: str, remote_base: str) -> str:
    """The snippet as a pipeline: a remote include served locally, a fragment with the
    README's component include in front of it."""
    if snippet_id(snippet) == "fragment":
        component = next(s for s in yaml_snippets() if snippet_id(s) == "component")
        include = component.split("\n\n", 1)[0]
        return f"{include}\n\n{snippet}"
    assert snippet_id(snippet) != "remote" or REMOTE_BASE in snippet
    return snippet.replace(REMOTE_BASE, remote_base)


@pytest.mark.e2e
@pytest.mark.parametrize("snippet", yaml_snippets(), ids=snippet_id)
def test_snippet_runs_a_tracked_deploy(
    snippet: str,
    sqlite_server: RunningServer,
    gitlab_workspace: GitLabWorkspace,
    remote_base: str,
    unique: Callable[[str], str],
) -> None:
    service = unique("readme")
    project = gitlab_workspace.project(service)
    # The snippet names the service its own way (input, top-level or job variable): only
    # the name changes, so that this test's events are its own.
    assert "shop-api" in runnable_pipeline(snippet, remote_base)
    pipeline = runnable_pipeline(snippet, remote_base).replace("shop-api", service)
    project.write(".gitlab-ci.yml", pipeline)
    project.write("scripts/deploy.sh", "#!/bin/sh\necho deployed\n", executable=True)
    project.commit()

    run = project.run({"TRACKER_URL": sqlite_server.url})

    assert run.returncode == 0, run.output
    assert "deployed" in run.output
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "success", run.output
    assert locks_of(sqlite_server.url, service) == [], run.output


def test_the_readme_s_short_section_shows_snippets_of_the_tested_page() -> None:
    """The README's GitLab snippet is one of docs/gitlab.md's (each runs in gitlab-ci-local)."""
    text = README.read_text()
    match = re.search(
        r"<!-- section: gitlab-quick -->(.*?)<!-- /section: gitlab-quick -->", text, re.S
    )
    assert match, "README.md has no gitlab-quick section"
    quick = re.findall(r"```yaml\n(.*?)```", match.group(1), flags=re.DOTALL)
    assert quick, "the README's GitLab section has no snippet"
    for snippet in quick:
        assert snippet in yaml_snippets(), snippet
    assert "TRACKER_FENCE" in match.group(1)
