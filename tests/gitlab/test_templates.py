"""The GitLab template, component and examples: schema, spec header, one source, shell."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.gitlab.gitlab_ci_local import ROOT
from tests.gitlab.gitlab_files import (
    COMPONENT,
    EXAMPLES,
    INCLUDE_TEMPLATE,
    load_gitlab_yaml,
    load_renderer,
    shell_script,
    spec_problems,
    split_component,
    validate_with_schema,
)

pytestmark = pytest.mark.unit

PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
HIDDEN_JOBS = (
    ".tracker-deploy",
    ".tracker-start",
    ".tracker-finish",
    ".tracker-finish-on-failure",
)


@pytest.fixture(scope="module")
def component_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The component's header and body as two files, for tools that read one document."""
    header, body = split_component(COMPONENT.read_text())
    directory = tmp_path_factory.mktemp("component")
    (directory / "spec-header.yml").write_text(header)
    (directory / "body.yml").write_text(body)
    return {"header": directory / "spec-header.yml", "body": directory / "body.yml"}


@pytest.mark.parametrize(
    "path", [INCLUDE_TEMPLATE, *EXAMPLES], ids=lambda p: str(Path(p).relative_to(ROOT))
)
def test_file_validates_against_gitlab_schema(path: Path) -> None:
    result = validate_with_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("part", ["header", "body"])
def test_component_documents_validate_against_gitlab_schema(
    component_parts: dict[str, Path], part: str
) -> None:
    result = validate_with_schema(component_parts[part])
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_catches_a_broken_job(tmp_path: Path) -> None:
    """The check above can fail: a job with an invalid `when:` is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        INCLUDE_TEMPLATE.read_text() + "\ndeploy:\n  when: sometimes\n  script: [x]\n"
    )
    result = validate_with_schema(broken)
    assert result.returncode == 1 and "sometimes" in result.stdout, result.stdout


def test_component_spec_header_is_valid() -> None:
    header, _ = split_component(COMPONENT.read_text())
    assert spec_problems(load_gitlab_yaml(header)) == []


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"x": {"default": 1, "description": "d"}}, "x: default 1 is not a string"),
        ({"x": {"default": "a", "description": "d", "typo": 1}}, "x: unknown keys ['typo']"),
        ({"x": {"default": "c", "description": "d", "options": ["a", "b"]}}, "not one of"),
        ({"x": {"default": "a b", "description": "d", "regex": "^[a-z]+$"}}, "does not match"),
        ({"x": {"type": "number", "default": True, "description": "d"}}, "is not a number"),
        ({"x": {"description": "d"}}, "x: no default"),
        ({"x": {"default": ""}}, "x: no description"),
    ],
)
def test_spec_check_finds_mistakes(inputs: dict, problem: str) -> None:
    problems = spec_problems({"spec": {"inputs": inputs}})
    assert any(problem in text for text in problems), problems


def test_include_template_is_rendered_from_the_component() -> None:
    """One source: the include template is the component at its defaults."""
    assert INCLUDE_TEMPLATE.read_text() == load_renderer().render(COMPONENT.read_text()), (
        "run: python gitlab/render_include_template.py"
    )


def test_every_input_is_used_and_every_use_is_declared() -> None:
    header, body = split_component(COMPONENT.read_text())
    declared = set(load_gitlab_yaml(header)["spec"]["inputs"])
    used = set(re.findall(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]", body))
    assert used == declared


def test_hidden_jobs_exist_in_both_forms() -> None:
    rendered = load_gitlab_yaml(INCLUDE_TEMPLATE.read_text())
    for job in HIDDEN_JOBS:
        assert job in rendered, job
    deploy = rendered[".tracker-deploy"]
    assert deploy["before_script"] and deploy["after_script"]
    assert (
        rendered[".tracker-start"]["artifacts"]["reports"]["dotenv"]
        == (rendered[".tracker-start"]["variables"]["TRACKER_CI_DOTENV"])
    )
    assert rendered[".tracker-finish"]["when"] == "on_success"
    assert rendered[".tracker-finish-on-failure"]["when"] == "on_failure"


def test_release_pins_match_the_project_version() -> None:
    """The default image and the pip fallback install this very release."""
    text = COMPONENT.read_text()
    assert f"ghcr.io/tracker-ci/tracker-ci:{PROJECT_VERSION}" in text
    assert f"tracker-ci[gitlab]=={PROJECT_VERSION}" in text
    for path in EXAMPLES:
        for pinned in re.findall(
            r"tracker-ci(?:/tracker-ci)?[@:](\d+\.\d+\.\d+)", path.read_text()
        ):
            assert pinned == PROJECT_VERSION, path


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize(
    "snippets",
    [
        ("settings", "install", "start"),
        ("settings", "install", "close-job"),
        ("settings", "install", "finish"),
    ],
    ids=["before_script", "after_script", "finish"],
)
def test_job_scripts_pass_shellcheck(snippets: tuple[str, ...]) -> None:
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "-"],
        input=shell_script(*snippets),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def run_snippets(
    tmp_path: Path, snippets: tuple[str, ...], env: dict[str, str], tail: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run snippets with /bin/sh in tmp_path, as a job would, then `tail`."""
    return subprocess.run(
        ["/bin/sh", "-c", shell_script(*snippets) + tail],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


SHOW = (
    "for n in TRACKER_URL TRACKER_SERVICE TRACKER_WAIT TRACKER_LOCK_TTL TRACKER_TOKEN; do "
    'eval "v=\\${$n-UNSET}"; echo "$n=$v"; done\n'
)


def shown(output: str) -> dict[str, str]:
    """NAME=value lines printed by SHOW."""
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_settings_variable_beats_default_and_empty_means_unset(tmp_path: Path) -> None:
    result = run_snippets(
        tmp_path,
        ("settings",),
        {
            "TRACKER_DEFAULT_URL": "http://from-input:8080",
            "TRACKER_DEFAULT_SERVICE": "input-service",
            "TRACKER_SERVICE": "variable-service",
            "TRACKER_DEFAULT_WAIT": "300",
            "TRACKER_DEFAULT_LOCK_TTL": "120",
            "TRACKER_TOKEN": "",
        },
        SHOW,
    )
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout) == {
        "TRACKER_URL": "http://from-input:8080",
        "TRACKER_SERVICE": "variable-service",
        "TRACKER_WAIT": "300",
        "TRACKER_LOCK_TTL": "120",
        "TRACKER_TOKEN": "UNSET",
    }


@pytest.mark.parametrize(
    ("mode", "job_timeout", "expected"),
    [("deploy", "1800", "2400"), ("deploy", None, "3600"), ("start", "1800", "3600")],
)
def test_lock_ttl_auto(tmp_path: Path, mode: str, job_timeout: str | None, expected: str) -> None:
    env = {"TRACKER_DEFAULT_LOCK_TTL": "auto", "TRACKER_CI_MODE": mode}
    if job_timeout:
        env["CI_JOB_TIMEOUT"] = job_timeout
    result = run_snippets(tmp_path, ("settings",), env, SHOW)
    assert shown(result.stdout)["TRACKER_LOCK_TTL"] == expected, result.stderr


def test_install_uses_a_virtualenv_when_tracker_ci_is_missing(tmp_path: Path) -> None:
    """No tracker-ci on PATH: python3 -m venv, pip install TRACKER_CI_PIP_SPEC, then PATH.

    python3 here is a stand-in that records its arguments and makes the venv's programs;
    pip itself cannot run offline.
    """
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    log = tmp_path / "calls.log"
    (fake_bin / "python3").write_text(
        f"""#!/bin/sh
echo "python3 $*" >> {log}
[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin"
cat > "$3/bin/python" <<'EOF'
#!/bin/sh
echo "venv-python $*" >> {log}
dir=$(dirname "$0")
printf '#!/bin/sh\\necho "tracker-ci from venv $*"\\n' > "$dir/tracker-ci"
chmod +x "$dir/tracker-ci"
EOF
chmod +x "$3/bin/python"
"""
    )
    (fake_bin / "python3").chmod(0o755)
    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "CI_PROJECT_DIR": str(tmp_path),
        "TRACKER_CI_PIP_SPEC": "tracker-ci[gitlab]==9.9.9",
    }
    first = run_snippets(tmp_path, ("install",), env, "tracker-ci --version\n")
    assert first.returncode == 0, first.stderr
    assert "tracker-ci from venv --version" in first.stdout
    venv = tmp_path / ".tracker-ci" / "venv"
    assert log.read_text().splitlines() == [
        f"python3 -m venv {venv}",
        "venv-python -m pip install --quiet --disable-pip-version-check tracker-ci[gitlab]==9.9.9",
    ]
    # after_script runs in a new shell: it finds the virtualenv again, no second install.
    second = run_snippets(tmp_path, ("install",), env, "tracker-ci --version\n")
    assert "tracker-ci from venv" in second.stdout
    assert len(log.read_text().splitlines()) == 2


def test_install_without_python_says_what_to_do(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    for tool in ("dirname", "mkdir", "rm", "sed", "tail"):
        found = shutil.which(tool)
        assert found
        (empty_bin / tool).symlink_to(found)
    # Closed (the default): the job fails before deploying, naming what fixes it.
    closed = run_snippets(tmp_path, ("settings", "install", "start"), {"PATH": str(empty_bin)})
    assert closed.returncode == 1
    assert "fail policy closed stops the job" in closed.stderr
    assert "TRACKER_CI_IMAGE" in closed.stderr
    assert "TRACKER_CI_PIP_SPEC" in closed.stderr
    # Open, explicitly: the deploy goes on, untracked and unlocked, and says so.
    opened = run_snippets(
        tmp_path,
        ("settings", "install", "start"),
        {"PATH": str(empty_bin), "TRACKER_FAIL_POLICY": "open"},
        'echo "deploying"\n',
    )
    assert opened.returncode == 0, opened.stderr
    assert "UNTRACKED and WITHOUT THE LOCK (fail policy open)" in opened.stderr
    assert "deploying" in opened.stdout


def test_bundled_server_example_matches_the_image() -> None:
    """The service runs the project's image with its default command (Dockerfile), on the
    port and host name that the example's server-url names."""
    example = load_gitlab_yaml(
        (ROOT / "examples" / "gitlab" / "bundled-server.gitlab-ci.yml").read_text()
    )
    [service] = example["deploy-with-tracker"]["services"]
    _, body = split_component(COMPONENT.read_text())
    assert service["name"] == load_gitlab_yaml(body)["variables"]["TRACKER_CI_IMAGE"]
    server_url = example["include"][0]["inputs"]["server-url"]
    match = re.fullmatch(r"http://([a-z-]+):(\d+)", server_url)
    assert match and match.group(1) == service["alias"], server_url
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["tracker-ci"\]', dockerfile, flags=re.MULTILINE)
    assert re.search(rf"^EXPOSE {match.group(2)}$", dockerfile, flags=re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd, "the image has no default command"
    argv = json.loads(cmd.group(1))
    assert argv[0] == "server" and argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == match.group(2)
