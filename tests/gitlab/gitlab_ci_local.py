"""Run GitLab pipelines on this machine with gitlab-ci-local, as a consumer project would.

gitlab-ci-local needs a git repository whose included files are tracked, and fetches
`include: project:` and `include: component:` files by cloning
``https://<host>:443/<project>.git``. A throwaway git config rewrites that URL to a local
bare repository holding this checkout's templates, tagged like a release, so that the
examples and the README snippets run unchanged (same project path, same ref).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = ROOT / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
VENV_BIN = Path(sys.executable).parent

# Where the examples and the README say tracker-ci is hosted, and the release they pin.
HOST = "gitlab.com"
UPSTREAM_PROJECT = "tracker-ci/tracker-ci"
RELEASE = "0.1.0"
# The consumer project: on the same instance, as GitLab requires for components.
CONSUMER_REMOTE = f"https://{HOST}/acme/shop.git"

# What a release of tracker-ci ships for GitLab (the paths that includes name).
SHIPPED_PATHS = ("templates", "gitlab/tracker-ci.gitlab-ci.yml")


def _git(cwd: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def git_environment(home: Path, rewrites: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose git config is ours alone: identity, URL rewrites, file://."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "gitconfig"
    lines = [
        "[user]",
        "\tname = tracker-ci tests",
        "\temail = tests@tracker-ci.invalid",
        "[init]",
        "\tdefaultBranch = main",
        '[protocol "file"]',
        "\tallow = always",
    ]
    for local, remote in (rewrites or {}).items():
        lines += [f'[url "{local}"]', f"\tinsteadOf = {remote}"]
    config.write_text("\n".join(lines) + "\n")
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LANG": "C.UTF-8",
    }
    return env


def publish_upstream(root: Path, *, env: dict[str, str]) -> Path:
    """A bare repository ``<root>/<UPSTREAM_PROJECT>.git`` with this checkout's GitLab files,
    on branch main and tagged RELEASE. Returns the work tree (served for `include: remote:`)."""
    work = root / "upstream-work"
    work.mkdir(parents=True)
    for relative in SHIPPED_PATHS:
        source = ROOT / relative
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    _git(work, "init", "-q", "-b", "main", env=env)
    _git(work, "add", ".", env=env)
    _git(work, "commit", "-q", "-m", "release", env=env)
    _git(work, "tag", RELEASE, env=env)
    bare = root / f"{UPSTREAM_PROJECT}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git(root, "clone", "-q", "--bare", str(work), str(bare), env=env)
    # gitlab-ci-local clones with --filter=tree:0.
    _git(bare, "config", "uploadpack.allowFilter", "true", env=env)
    return work


#: gitlab-ci-local fetches a component included twice (two job prefixes) into one
#: directory at once, and one fetch may fail with "File exists" before any job runs: a race
#: in the tool (seen once in about ten full runs), not in the templates.
_INCLUDE_FETCH_RACE = re.compile(r"\.gitlab-ci-local/includes/\S*': File exists")


@dataclass
class PipelineRun:
    """One gitlab-ci-local run: its exit code and its whole output."""

    returncode: int
    output: str

    def job_lines(self, job: str) -> list[str]:
        """What the job printed, without gitlab-ci-local's prefixes ("job > ", "job $ ")."""
        prefix = f"{job} "
        lines = []
        for line in self.output.splitlines():
            if line.startswith(prefix):
                text = line[len(prefix) :].strip()
                lines.append(text[2:] if text.startswith("> ") else text)
        return lines


class ConsumerProject:
    """A project that uses tracker-ci: a git repo with a pipeline and its deploy scripts."""

    def __init__(self, path: Path, *, env: dict[str, str]) -> None:
        self.path = path
        self.env = env
        path.mkdir(parents=True)
        _git(path, "init", "-q", "-b", "main", env=env)
        _git(path, "remote", "add", "origin", CONSUMER_REMOTE, env=env)

    def write(self, relative: str, text: str, *, executable: bool = False) -> None:
        """Add a file to the project (committed before the pipeline runs)."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if executable:
            target.chmod(0o755)

    def commit(self) -> None:
        """Track every file and point origin/HEAD at main, as a clone would have it."""
        _git(self.path, "add", "-A", env=self.env)
        _git(self.path, "commit", "-q", "-m", "pipeline", env=self.env)
        _git(self.path, "update-ref", "refs/remotes/origin/main", "HEAD", env=self.env)
        _git(
            self.path,
            "symbolic-ref",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/main",
            env=self.env,
        )

    def command(self, variables: dict[str, str], jobs: tuple[str, ...] = ()) -> list[str]:
        """The gitlab-ci-local command line (shell executor, variables as pipeline variables)."""
        argv = [str(GITLAB_CI_LOCAL), "--color=false", "--force-shell-executor"]
        for name, value in variables.items():
            argv += ["--variable", f"{name}={value}"]
        return argv + list(jobs)

    def start(self, variables: dict[str, str]) -> subprocess.Popen[str]:
        """Start the pipeline in the background (for runs in parallel)."""
        return subprocess.Popen(
            self.command(variables),
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, variables: dict[str, str], *, timeout: float = 120) -> PipelineRun:
        """Run the whole pipeline and wait for it (once more when gitlab-ci-local lost its
        own race fetching an include, before any job started)."""
        for _ in range(2):
            process = self.start(variables)
            output, _ = process.communicate(timeout=timeout)
            fetch_race = _INCLUDE_FETCH_RACE.search(output) and "starting shell" not in output
            if process.returncode == 0 or not fetch_race:
                break
        return PipelineRun(process.returncode, output)


@dataclass
class GitLabWorkspace:
    """Where consumer projects live; their git config fetches includes from `upstream`."""

    root: Path
    env: dict[str, str]
    upstream_work_tree: Path

    def project(self, name: str) -> ConsumerProject:
        """A new, empty consumer project."""
        return ConsumerProject(self.root / "projects" / name, env=self.env)


def finish(process: subprocess.Popen[str], *, timeout: float = 120) -> PipelineRun:
    """Wait for a pipeline started with ConsumerProject.start."""
    output, _ = process.communicate(timeout=timeout)
    return PipelineRun(process.returncode, output)
