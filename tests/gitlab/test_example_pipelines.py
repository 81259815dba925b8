"""The example pipelines of examples/gitlab/, run by gitlab-ci-local against the real server.

Each test makes a consumer project (git repo) with one example pipeline and its deploy
scripts; the pipeline includes our templates exactly as the example says (project or
component at release 0.1.0), fetched from a local copy of this checkout. Jobs run with the
shell executor and this virtualenv's `tracker-ci`; pipeline variables (`--variable`) point
them at the session's bundled server, as a CI/CD settings variable would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from tests.gitlab.fake_gitlab import fake_gitlab
from tests.gitlab.gitlab_ci_local import ROOT, ConsumerProject, GitLabWorkspace, finish
from tests.support.api import changelog, deployments, locks_of, queue_of
from tests.support.servers import RunningServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples" / "gitlab"
MR_PROJECT_URL = "https://gitlab.com/acme/shop"

# A deploy script that records whether the lock was held while it ran (exit 3 = held).
DEPLOY_OK = """#!/bin/sh
tracker-ci lock status --environment "${TRACKER_ENVIRONMENT:-production}" >/dev/null 2>&1
echo "lock-status-exit=$?"
echo "deployed $TRACKER_SERVICE"
"""
DEPLOY_FAILS = """#!/bin/sh
echo "deploy went wrong" >&2
exit 1
"""


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp of the wire format."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def closed_at(server_url: str, event: dict) -> datetime:
    """When the event's status changed to its final one (its changelog says)."""
    changes = [
        entry
        for entry in changelog(server_url, event["metadata"]["id"])
        if entry["changeType"] == "status_changed"
    ]
    assert changes, f"event {event['metadata']['id']} was never closed"
    return max(parse_time(entry["timestamp"]) for entry in changes)


def project_with_example(
    workspace: GitLabWorkspace, name: str, example: str, scripts: dict[str, str]
) -> ConsumerProject:
    """A consumer project whose .gitlab-ci.yml is an example, with its deploy scripts."""
    project = workspace.project(name)
    project.write(".gitlab-ci.yml", (EXAMPLES / example).read_text())
    for path, text in scripts.items():
        project.write(path, text, executable=True)
    project.commit()
    return project


def pipeline_variables(server: RunningServer, service: str, **extra: str) -> dict[str, str]:
    """Pipeline variables: they win over the example's own variables and inputs."""
    return {"TRACKER_URL": server.url, "TRACKER_SERVICE": service, **extra}


def test_include_template_deploy_succeeds(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    service = unique("include-ok")
    project = project_with_example(
        gitlab_workspace,
        service,
        "include-template.gitlab-ci.yml",
        {"scripts/deploy.sh": DEPLOY_OK},
    )
    run = project.run(
        pipeline_variables(
            sqlite_server,
            service,
            CI_MERGE_REQUEST_PROJECT_URL=MR_PROJECT_URL,
            CI_MERGE_REQUEST_IID="42",
        )
    )

    assert run.returncode == 0, run.output
    deploy_log = "\n".join(run.job_lines("deploy"))
    assert "lock-status-exit=3" in deploy_log, "the lock was not held while the script ran"
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "success", event
    assert event["attributes"]["environment"] == "production"
    assert event["attributes"]["source"] == "gitlab-ci"
    assert event["links"]["pullRequestLink"] == f"{MR_PROJECT_URL}/-/merge_requests/42"
    assert event["metadata"]["duration"], "a closed deployment has a duration"
    assert locks_of(sqlite_server.url, service) == [], run.output


# The README's fencing recipe in a deploy job's own script.
DEPLOY_FENCED = """#!/bin/sh
set -e
echo "ids: event=$TRACKER_EVENT_ID lock=$TRACKER_LOCK_ID fence=$TRACKER_FENCE"
tracker-ci lock check --environment "${TRACKER_ENVIRONMENT:-production}" --fence "$TRACKER_FENCE"
echo "fence checked"
"""


def test_include_template_deploy_script_can_fence(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    service = unique("include-fence")
    project = project_with_example(
        gitlab_workspace,
        service,
        "include-template.gitlab-ci.yml",
        {"scripts/deploy.sh": DEPLOY_FENCED},
    )
    run = project.run(pipeline_variables(sqlite_server, service))

    assert run.returncode == 0, run.output
    deploy_log = "\n".join(run.job_lines("deploy"))
    [event] = deployments(sqlite_server.url, service)
    assert f"ids: event={event['metadata']['id']} lock=" in deploy_log, deploy_log
    assert "fence=1" in deploy_log and "fence checked" in deploy_log, deploy_log
    assert "lock= " not in deploy_log, "the lock id is empty"
    assert event["attributes"]["status"] == "success"
    assert locks_of(sqlite_server.url, service) == [], run.output


def test_include_template_failing_script_closes_as_failure(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    service = unique("include-fail")
    project = project_with_example(
        gitlab_workspace,
        service,
        "include-template.gitlab-ci.yml",
        {"scripts/deploy.sh": DEPLOY_FAILS},
    )
    run = project.run(pipeline_variables(sqlite_server, service))

    assert run.returncode == 1, run.output
    assert any("FAIL" in line and "deploy" in line for line in run.output.splitlines())
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "failure", event
    assert locks_of(sqlite_server.url, service) == [], run.output


def test_include_template_never_closes_another_pipelines_deploy(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    """The lock is held elsewhere and TRACKER_WAIT=0: the job fails (exit 3 in before_script)
    and its after_script leaves the holder's event and lock alone."""
    import httpx

    service = unique("include-held")
    holder = httpx.post(
        f"{sqlite_server.url}/api/v1alpha1/event",
        json={
            "title": "someone else's deploy",
            "attributes": {
                "message": "",
                "source": "tests",
                "type": "deployment",
                "priority": "P3",
                "service": service,
                "status": "start",
                "environment": "production",
                "owner": "someone-else",
            },
            "links": {},
        },
        timeout=10,
    )
    holder.raise_for_status()
    holder_id = holder.json()["event"]["metadata"]["id"]
    project = project_with_example(
        gitlab_workspace,
        service,
        "include-template.gitlab-ci.yml",
        {"scripts/deploy.sh": DEPLOY_OK},
    )
    run = project.run(pipeline_variables(sqlite_server, service, TRACKER_WAIT="0"))

    assert run.returncode == 1, run.output
    deploy_log = "\n".join(run.job_lines("deploy"))
    assert "deployed" not in deploy_log, "the deploy script ran without the lock"
    assert "opened no deployment event" in deploy_log
    [event] = deployments(sqlite_server.url, service)
    assert event["metadata"]["id"] == holder_id
    assert event["attributes"]["status"] == "start"
    [lock] = locks_of(sqlite_server.url, service)
    assert lock["eventId"] == holder_id


def test_two_pipelines_of_one_service_deploy_one_after_the_other(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    service = unique("include-serial")
    # The first deploy's work lasts until the second pipeline waits in the lock's queue
    # (a gate file, not a sleep: a fixed 4 s was shorter than gitlab-ci-local's start of
    # the second pipeline on a loaded machine, which then found the lock free).
    gate = gitlab_workspace.root / f"{service}.go"
    slow = project_with_example(
        gitlab_workspace,
        f"{service}-first",
        "include-template.gitlab-ci.yml",
        {
            "scripts/deploy.sh": f"#!/bin/sh\nwhile [ ! -e '{gate}' ]; do sleep 0.05; done\n"
            "echo first deployed\n"
        },
    )
    fast = project_with_example(
        gitlab_workspace,
        f"{service}-second",
        "include-template.gitlab-ci.yml",
        {"scripts/deploy.sh": "#!/bin/sh\necho second deployed\n"},
    )
    variables = pipeline_variables(sqlite_server, service)

    first = slow.start(variables)

    # Start the second pipeline once the first holds the lock.
    def first_holds_the_lock() -> list[dict]:
        if first.poll() is not None:
            pytest.fail(f"the first pipeline ended first:\n{finish(first).output}")
        return locks_of(sqlite_server.url, service)

    eventually(first_holds_the_lock, interval=0.2, message="the first pipeline took the lock")
    second = fast.start(variables)
    try:
        eventually(
            lambda: queue_of(sqlite_server.url, service),
            interval=0.2,
            message="the second pipeline waits in the lock's queue",
        )
    finally:
        gate.touch()  # the first deploy ends (also when the wait failed: no hung pipeline)
    first_run, second_run = finish(first), finish(second)

    assert first_run.returncode == 0, first_run.output
    assert second_run.returncode == 0, second_run.output
    earlier, later = deployments(sqlite_server.url, service)
    assert [earlier["attributes"]["status"], later["attributes"]["status"]] == ["success"] * 2
    # The second event was created only after the first was closed (its lock released).
    assert parse_time(later["metadata"]["createdAt"]) >= closed_at(sqlite_server.url, earlier)
    assert "first deployed" in first_run.output and "second deployed" in second_run.output
    waiting = [line for line in second_run.job_lines("deploy") if "waiting for lock" in line]
    assert waiting and earlier["metadata"]["id"] in waiting[0], second_run.output
    assert locks_of(sqlite_server.url, service) == [], second_run.output


@pytest.mark.parametrize("failing_region", [None, "us-east"])
def test_component_multi_job_deploy(
    sqlite_server: RunningServer,
    gitlab_workspace: GitLabWorkspace,
    unique: Callable,
    failing_region: str | None,
) -> None:
    """Start job -> one deploy job per region (TRACKER_EVENT_ID from the dotenv report) ->
    the finish job that matches the outcome."""
    service = unique("component")
    deploy = DEPLOY_OK
    if failing_region:
        deploy = DEPLOY_OK.replace(
            "#!/bin/sh\n", f'#!/bin/sh\n[ "$1" = {failing_region} ] && exit 1\n'
        )
    project = project_with_example(
        gitlab_workspace, service, "component.gitlab-ci.yml", {"scripts/deploy.sh": deploy}
    )
    run = project.run(
        pipeline_variables(
            sqlite_server,
            service,
            CI_MERGE_REQUEST_PROJECT_URL=MR_PROJECT_URL,
            CI_MERGE_REQUEST_IID="7",
        )
    )

    [event] = deployments(sqlite_server.url, service)
    event_id = event["metadata"]["id"]
    assert event["links"]["pullRequestLink"] == f"{MR_PROJECT_URL}/-/merge_requests/7"
    # mr-note: true in the example reaches tracker-ci (which has no GitLab token here).
    assert "--comment needs --gitlab-token" in run.output, run.output
    assert locks_of(sqlite_server.url, service) == [], run.output
    for region in ("eu-west", "us-east"):
        region_log = run.job_lines(f"deploy-app: [{region}]")
        assert f"deploying event {event_id} to {region}" in region_log, run.output
    if failing_region is None:
        assert run.returncode == 0, run.output
        assert "lock-status-exit=3" in run.job_lines("deploy-app: [eu-west]")
        assert event["attributes"]["status"] == "success", event
        assert run.job_lines("deploy-finish") and not run.job_lines("deploy-failed")
    else:
        assert run.returncode == 1, run.output
        assert event["attributes"]["status"] == "failure", event
        assert run.job_lines("deploy-failed") and not run.job_lines("deploy-finish")


def test_component_mr_note_is_kept_on_the_merge_request(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    """mr-note: true (the component example) with GITLAB_TOKEN: one note on the merge
    request, written when the deploy starts and updated in place with the result."""
    service = unique("mr-note")
    project = project_with_example(
        gitlab_workspace, service, "component.gitlab-ci.yml", {"scripts/deploy.sh": DEPLOY_OK}
    )
    with fake_gitlab() as gitlab:
        run = project.run(
            pipeline_variables(
                sqlite_server,
                service,
                CI_MERGE_REQUEST_PROJECT_URL=f"{gitlab.url}/acme/shop",
                CI_MERGE_REQUEST_IID="7",
                GITLAB_TOKEN="glpat-test-token",
            )
        )

    assert run.returncode == 0, run.output
    [event] = deployments(sqlite_server.url, service)
    assert event["links"]["pullRequestLink"] == f"{gitlab.url}/acme/shop/-/merge_requests/7"
    [note] = gitlab.notes[("acme%2Fshop", "7")]
    assert f"<!-- tracker-ci:{service}/production -->" in note["body"], note
    assert "success" in note["body"], note
    methods = [
        method for method, path, _ in gitlab.requests if path.endswith(("/notes", "/notes/1"))
    ]
    assert "POST" in methods and "PUT" in methods, gitlab.requests
    assert {token for _, _, token in gitlab.requests} == {"glpat-test-token"}


def without_services(pipeline: str) -> str:
    """The pipeline with its `services:` entries removed (the shell executor has none)."""
    kept, skipping = [], False
    for line in pipeline.splitlines(keepends=True):
        if line.startswith("  services:"):
            skipping = True
            continue
        if skipping and (line.startswith("    ") or not line.strip()):
            continue
        skipping = False
        kept.append(line)
    return "".join(kept)


def test_bundled_server_example(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    """gitlab-ci-local needs docker for `services:`, which this machine lacks: the test drops
    the service and points TRACKER_URL at the session's server instead (a pipeline variable
    wins over the server-url input). The rest of the example runs unchanged."""
    service = unique("bundled")
    pipeline = (EXAMPLES / "bundled-server.gitlab-ci.yml").read_text()
    assert "alias: tracker" in pipeline and "server-url: http://tracker:8080" in pipeline
    project = gitlab_workspace.project(service)
    project.write(".gitlab-ci.yml", without_services(pipeline))
    project.write("scripts/deploy.sh", DEPLOY_OK, executable=True)
    project.commit()
    run = project.run(pipeline_variables(sqlite_server, service))
    assert run.returncode == 0, run.output
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "success"
    assert event["attributes"]["environment"] == "UAT"
    job_log = run.job_lines("deploy-with-tracker")
    assert "lock-status-exit=3" in job_log
    # after_script: the template closes the event, then the example shows it and the lock.
    search_rows = [line for line in job_log if line.startswith("20") and "deployment" in line]
    assert len(search_rows) == 1 and event["metadata"]["id"] in search_rows[0], job_log
    assert " success " in search_rows[0], search_rows
    assert any(line.startswith("free:") for line in job_log), job_log
    assert locks_of(sqlite_server.url, service) == [], run.output


def test_component_twice_with_two_job_prefixes(
    sqlite_server: RunningServer, gitlab_workspace: GitLabWorkspace, unique: Callable
) -> None:
    """Inputs become job-level defaults, so two includes do not overwrite each other."""
    api, web = unique("prefix-api"), unique("prefix-web")
    project = gitlab_workspace.project(api)
    project.write(
        ".gitlab-ci.yml",
        f"""include:
  - component: gitlab.com/tracker-ci/tracker-ci/tracker-ci@0.1.0
    inputs:
      job-prefix: api-
      service: {api}
      environment: UAT
      stage: release
  - component: gitlab.com/tracker-ci/tracker-ci/tracker-ci@0.1.0
    inputs:
      job-prefix: web-
      service: {web}
      environment: production
      stage: release

stages: [release]

deploy-api:
  extends: .api-deploy
  script: [./scripts/deploy.sh]

deploy-web:
  extends: .web-deploy
  script: [./scripts/deploy.sh]
""",
    )
    project.write("scripts/deploy.sh", DEPLOY_OK, executable=True)
    project.commit()

    run = project.run({"TRACKER_URL": sqlite_server.url})

    assert run.returncode == 0, run.output
    assert "starting shell (release)" in run.output
    [api_event] = deployments(sqlite_server.url, api)
    [web_event] = deployments(sqlite_server.url, web)
    assert api_event["attributes"]["environment"] == "UAT"
    assert web_event["attributes"]["environment"] == "production"
    assert api_event["attributes"]["status"] == web_event["attributes"]["status"] == "success", (
        run.output
    )
    assert f"deployed {api}" in run.job_lines("deploy-api")
    assert f"deployed {web}" in run.job_lines("deploy-web")


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ("environment: eu west", "`eu west` does not match required regex"),
        ("lock-ttl: soon", "`soon` does not match required regex"),
        ("lock-wait: many", "`lock-wait` input: provided value is not a number"),
    ],
)
def test_component_refuses_bad_inputs(
    gitlab_workspace: GitLabWorkspace, unique: Callable, given: str, refusal: str
) -> None:
    """The spec's options, regex and types turn a typo into a pipeline error, not a deploy."""
    project = gitlab_workspace.project(unique("bad-input"))
    project.write(
        ".gitlab-ci.yml",
        "include:\n"
        "  - component: gitlab.com/tracker-ci/tracker-ci/tracker-ci@0.1.0\n"
        f"    inputs:\n      {given}\n\n"
        "deploy:\n  extends: .tracker-deploy\n  script: [./scripts/deploy.sh]\n",
    )
    project.write("scripts/deploy.sh", DEPLOY_OK, executable=True)
    project.commit()

    run = project.run({})

    assert run.returncode == 1, run.output
    assert refusal in run.output, run.output
    assert "starting shell" not in run.output


def test_examples_are_all_run_here() -> None:
    """A new example must get a test above."""
    tested = {
        "include-template.gitlab-ci.yml",
        "component.gitlab-ci.yml",
        "bundled-server.gitlab-ci.yml",
    }
    assert {path.name for path in EXAMPLES.glob("*.yml")} == tested
