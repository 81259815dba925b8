"""action.yml, the Dockerfile, the example workflows and the README, checked by the
validators GitHub users run (check-jsonschema, actionlint with shellcheck, hadolint) and
against each other so that they cannot drift apart."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.action.emulator import (
    ACTION_YML,
    DOCKERFILE,
    ROOT,
    dockerfile_entrypoint_dir,
    dockerfile_instructions,
    dockerfile_stages,
    load_action,
)
from tests.conftest import RUNNING_IN_CI
from tracker_ci.ci import action_files, github_action
from tracker_ci.ci.action_inputs import OUR_DEFAULTS, UPSTREAM_DEFAULTS

EXAMPLES = sorted((ROOT / "examples" / "github").glob("*.yml"))
README = ROOT / "README.md"
#: The action's page: what the README's short section leaves out (the inputs table...).
ACTION_DOC = ROOT / "docs" / "github-action.md"


def _tool(name: str) -> str:
    """The validator from the project's environment; a skip only outside CI."""
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    if RUNNING_IN_CI:
        pytest.fail(f"{name} is required under CI=true (make test installs it)")
    pytest.skip(f"{name} is not installed (make test installs it)")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # shellcheck is found on PATH by actionlint; keep /usr/bin there.
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + os.pathsep + "/usr/bin"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def readme_section() -> str:
    """The README's github-action section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- section: github-action -->\n(.*?)<!-- /section: github-action -->", text, re.S
    )
    assert match, "README.md has no github-action section"
    return match.group(1)


def readme_workflow(tmp_path: Path) -> Path:
    """The README's copy-paste workflow (its first yaml block), as a file."""
    match = re.search(r"```yaml\n(.*?)```", readme_section(), re.S)
    assert match, "the github-action section has no yaml workflow"
    path = tmp_path / "readme-deploy.yml"
    path.write_text(match.group(1), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- validators
@pytest.mark.e2e
def test_action_yml_matches_the_schema_of_github_actions() -> None:
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION_YML)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_examples_and_readme_workflow_match_the_schema_of_workflows(tmp_path: Path) -> None:
    assert len(EXAMPLES) >= 4
    files = [str(path) for path in EXAMPLES] + [str(readme_workflow(tmp_path))]
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_actionlint_and_shellcheck_pass_on_examples_and_readme_workflow(tmp_path: Path) -> None:
    if not shutil.which("shellcheck", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin"):
        if RUNNING_IN_CI:
            pytest.fail("shellcheck is required under CI=true")
        pytest.skip("shellcheck is not installed: actionlint would skip run: scripts")
    files = [str(path) for path in EXAMPLES] + [str(readme_workflow(tmp_path))]
    result = _run([_tool("actionlint"), "-no-color", *files])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a wrong step and a bad script are reported."""
    broken = tmp_path / "broken.yml"
    text = EXAMPLES[0].read_text(encoding="utf-8")
    broken.write_text(
        text.replace("actions/checkout@v5", "actions/checkout@v4").replace(
            "runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    steps-typo: 1"
        ),
        encoding="utf-8",
    )
    result = _run([_tool("actionlint"), "-no-color", str(broken)])
    assert result.returncode != 0
    assert "steps-typo" in result.stdout and "checkout@v4" in result.stdout


@pytest.mark.e2e
def test_hadolint_passes_on_the_dockerfile() -> None:
    result = _run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- consistency
@pytest.mark.unit
def test_the_module_reads_exactly_the_inputs_of_action_yml() -> None:
    assert tuple(load_action()["inputs"]) == github_action.INPUT_NAMES
    assert tuple(load_action()["outputs"]) == github_action.OUTPUT_NAMES


@pytest.mark.unit
def test_input_names_are_kebab_case_with_descriptions() -> None:
    for name, spec in load_action()["inputs"].items():
        # bananaops/tracker-action's spellings are kept as they were, for its workflows.
        if name not in github_action.UPSTREAM_ALIASES:
            assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name
        assert spec.get("description"), name
        assert isinstance(spec.get("default", ""), str), f"{name}: defaults are strings"
    for name, spec in load_action()["outputs"].items():
        assert spec.get("description"), name


@pytest.mark.unit
def test_defaults_of_choice_inputs_are_valid_choices() -> None:
    from tracker_ci.models import Environment, Priority

    inputs = load_action()["inputs"]
    assert inputs["mode"]["default"] == "", "no mode: as command or status imply"
    # Empty: ours (production, P3), or upstream's in an upstream workflow (action_inputs).
    assert inputs["environment"]["default"] == inputs["priority"]["default"] == ""
    assert OUR_DEFAULTS["environment"] in Environment.choices()
    assert {OUR_DEFAULTS["priority"], UPSTREAM_DEFAULTS["priority"]} <= set(Priority.choices())
    assert inputs["fail-policy"]["default"] in github_action.FAIL_POLICIES
    for name in ("comment", "auto-close"):
        assert inputs[name]["default"] in ("true", "false"), name
    for name in ("wait", "lock-ttl"):
        assert inputs[name]["default"].isdigit(), name
    assert inputs["job-status"]["default"] == "${{ job.status }}"
    assert inputs["github-token"]["default"] == "${{ github.token }}"


@pytest.mark.unit
def test_environments_and_priorities_are_the_wire_enums() -> None:
    from tracker_ci.models import Environment, Priority

    raw = dict.fromkeys(github_action.INPUT_NAMES, "")
    raw.update(service="shop", command="true")
    for environment in Environment.choices():
        assert github_action.parse_inputs({**raw, "environment": environment}).doubts == ()
    for priority in Priority.choices():
        parsed = github_action.parse_inputs({**raw, "environment": "UAT", "priority": priority})
        assert parsed.priority == priority and parsed.doubts == ()
    with pytest.raises(github_action.ActionError, match="`environment`"):
        github_action.parse_inputs({**raw, "environment": "prod env"})


@pytest.mark.unit
def test_the_dockerfile_installs_the_entrypoints_action_yml_runs() -> None:
    runs = load_action()["runs"]
    assert runs["using"] == "docker" and runs["image"] == "Dockerfile"
    directory = dockerfile_entrypoint_dir()
    assert directory == action_files.ENTRYPOINT_DIR
    assert runs["entrypoint"] == f"{directory}/{action_files.ENTRYPOINT_NAMES['main']}"
    assert runs["post-entrypoint"] == f"{directory}/{action_files.ENTRYPOINT_NAMES['post']}"
    assert "args" not in runs, "args would reach the post stage too"


@pytest.mark.unit
def test_the_dockerfile_runs_as_the_runner_expects() -> None:
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert "USER" not in keywords and "WORKDIR" not in keywords
    stages = dockerfile_stages()
    assert list(stages) == ["base", "server", "action"], "action.yml builds the last stage"
    base = stages["base"][0][1].split()[0]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?", base), f"unpinned base {base}"
    installs = [rest for keyword, rest in instructions if keyword == "RUN" and "pip" in rest]
    assert installs and all("--no-cache-dir" in rest for rest in installs)
    for name, stage in stages.items():
        if name == "base":
            continue
        entrypoint = [yaml.safe_load(rest) for keyword, rest in stage if keyword == "ENTRYPOINT"]
        assert entrypoint == [["tracker-ci"]], name
    # Without an entrypoint override (a service container) the server image serves.
    (cmd,) = [rest for keyword, rest in stages["server"] if keyword == "CMD"]
    assert yaml.safe_load(cmd)[:3] == ["server", "--host", "0.0.0.0"]


@pytest.mark.unit
def test_each_image_installs_its_dependencies_in_a_layer_before_the_code() -> None:
    for name in ("server", "action"):
        stage = dockerfile_stages()[name]
        steps = [f"{keyword} {rest}" for keyword, rest in stage]
        requirements = f"COPY docker/requirements-{name}.txt /tmp/requirements.txt"
        deps = next(i for i, step in enumerate(steps) if "--requirement" in step)
        code = next(i for i, step in enumerate(steps) if step.startswith("COPY tracker_ci"))
        assert steps.index(requirements) < deps < code, steps
        assert any("--no-deps /tmp/tracker-ci" in step for step in steps[code:]), steps
    action = " ".join(rest for _, rest in dockerfile_stages()["action"])
    assert "--install-entrypoints" in action and "server" not in action.split("AS")[0]


@pytest.mark.unit
def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    copied = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            copied.update(part.rstrip("/") for part in rest.split()[:-1])
    assert {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")} == copied


@pytest.mark.unit
def test_docs_inputs_table_is_generated_from_action_yml() -> None:
    table = action_files.inputs_table(ACTION_YML)
    assert table in ACTION_DOC.read_text(encoding="utf-8"), (
        "docs/github-action.md's inputs table is stale: paste the output of "
        "`python -m tracker_ci.ci.github_action --print-inputs-table`"
    )
    # And every input and output is in it.
    for name in [*load_action()["inputs"], *load_action()["outputs"]]:
        assert f"| `{name}` |" in table


@pytest.mark.unit
def test_print_inputs_table_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracker_ci.ci.github_action", "--print-inputs-table"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == action_files.inputs_table(ACTION_YML)


@pytest.mark.unit
def test_examples_use_the_action_with_pinned_actions_permissions_and_timeouts() -> None:
    inputs = set(load_action()["inputs"])
    for path in EXAMPLES:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "permissions" in workflow, path.name
        uses_action = False
        for name, job in workflow["jobs"].items():
            assert "timeout-minutes" in job, f"{path.name}: job {name}"
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses:
                    assert re.search(r"@v\d+$", uses), f"{path.name}: unpinned {uses}"
                    assert "checkout@v4" not in uses
                if uses.startswith("tracker-ci/tracker-ci@"):
                    uses_action = True
                    unknown = set(step.get("with", {})) - inputs
                    assert not unknown, f"{path.name}: unknown inputs {unknown}"
        assert uses_action, path.name


@pytest.mark.unit
@pytest.mark.parametrize("image", ["action", "server"])
def test_each_image_pins_every_runtime_dependency_within_the_project_ranges(image: str) -> None:
    """docker/requirements-*.txt (written by `python -m tests.action.constraints`) are
    complete: every dependency of the image's extras, within the project's ranges."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from tests.action.constraints import IMAGE_EXTRAS, requirements_path

    pins = {}
    for line in requirements_path(image).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in IMAGE_EXTRAS[image]:
        wanted += project["optional-dependencies"][extra]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{name} is not pinned for the {image} image: run "
            "`.venv/bin/python -m tests.action.constraints`"
        )
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}: {text}"
    if image == "action":
        assert not {"fastapi", "sqlalchemy", "python-gitlab", "psycopg"} & set(pins)


@pytest.mark.e2e
@pytest.mark.server
def test_the_image_default_command_serves_the_bundled_server(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD, as a service container runs them (listening on loopback here)."""
    import httpx

    from tests.support.servers import free_port
    from tests.support.waiting import eventually

    instructions = dockerfile_stages()["server"]
    (entrypoint,) = [
        yaml.safe_load(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"
    ]
    (cmd,) = [yaml.safe_load(rest) for keyword, rest in instructions if keyword == "CMD"]
    argv = [*entrypoint, *cmd]
    port = free_port()
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    argv[0] = str(Path(sys.executable).parent / argv[0])
    env = {**os.environ, "TRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'tracker.db'}"}
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def answered() -> httpx.Response | None:
        if server.poll() is not None:
            pytest.fail((tmp_path / "server.log").read_text())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.TransportError:
            return None

    try:
        health = eventually(answered, interval=0.1, message="the server's /health answered")
        assert health.status_code == 200 and health.json()["database"] == "ok"
        assert (tmp_path / "tracker.db").exists(), "TRACKER_DATABASE_URL picks the database"
    finally:
        server.terminate()
        server.wait(timeout=15)


RELEASE_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("release-*.yml"))


@pytest.mark.e2e
def test_release_workflows_pass_actionlint_and_the_workflow_schema() -> None:
    assert [path.name for path in RELEASE_WORKFLOWS] == ["release-image.yml", "release-pypi.yml"]
    files = [str(path) for path in RELEASE_WORKFLOWS]
    schema = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files]
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = _run([_tool("actionlint"), "-no-color", *files])
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.unit
def test_the_image_release_builds_both_targets_and_pins_action_yml_to_its_image() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release-image.yml").read_text())
    image = workflow["jobs"]["image"]
    assert image["strategy"]["matrix"]["target"] == list(dockerfile_stages())[1:]
    build = next(s for s in image["steps"] if s.get("id") == "build")["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["provenance"] == "mode=max" and build["sbom"] is True
    pin = workflow["jobs"]["pin-action"]["steps"][-1]["run"]
    sed = re.search(r'sed -i "s\|(.*?)\|(.*?)\|" action.yml', pin)
    assert sed, pin
    pattern = sed.group(1).replace("$", r"$")
    # The line the release rewrites is in action.yml, exactly once.
    assert len(re.findall(pattern, ACTION_YML.read_text(), flags=re.MULTILINE)) == 1
    pypi = yaml.safe_load((ROOT / ".github" / "workflows" / "release-pypi.yml").read_text())
    publish = pypi["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}, "trusted publishing, no token"
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")


@pytest.mark.unit
def test_the_service_container_recipe_builds_the_server_target() -> None:
    """The last target (`action`) has no server: a recipe building it served `--help`."""
    from tests.action.emulator import dockerfile_stages

    stages = dockerfile_stages()
    assert "server" in stages and list(stages)[-1] == "action"
    server_cmd = [rest for keyword, rest in stages["server"] if keyword == "CMD"]
    assert server_cmd and '"server"' in server_cmd[-1]
    text = ACTION_DOC.read_text(encoding="utf-8")
    recipe = text[text.index("## The bundled server as a service container") :]
    builds = re.findall(r"^docker build .*$", recipe, re.M)
    assert builds and all("--target server" in line for line in builds), builds


@pytest.mark.unit
def test_the_readme_names_one_home_for_every_reference() -> None:
    """One naming scheme (tracker-ci/tracker-ci), stated once; no placeholders left."""
    for path in [README, *sorted((ROOT / "docs").glob("*.md")), *EXAMPLES]:
        text = path.read_text(encoding="utf-8")
        for stale in ("tracker-ci/tracker-action", "YOUR-ORG", "ghcr.io/OWNER"):
            assert stale not in text, f"{path.name}: {stale}"
    assert "**Names.**" in README.read_text(encoding="utf-8")
