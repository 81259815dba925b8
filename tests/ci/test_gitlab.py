"""GitLab CI context, the dotenv report, and the MR lookup/note against a canned API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker_ci.ci import gitlab

pytestmark = pytest.mark.unit

SHA = "89abcdef0123456789abcdef0123456789abcdef"
COMMIT_MRS = f"/api/v4/projects/42/repository/commits/{SHA}/merge_requests"


def _env(server: str = "https://gitlab.example", **extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": server,
        "CI_API_V4_URL": f"{server}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "acme/api",
        "CI_PROJECT_URL": f"{server}/acme/api",
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_SHORT_SHA": SHA[:8],
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_URL": f"{server}/acme/api/-/pipelines/7",
        "CI_JOB_ID": "1001",
        "CI_JOB_URL": f"{server}/acme/api/-/jobs/1001",
        "GITLAB_USER_LOGIN": "bob",
        **extra,
    }


def test_detect_reads_the_ci_variables() -> None:
    context = gitlab.detect(_env())
    assert context is not None
    assert (context.project_path, context.sha, context.short_sha) == ("acme/api", SHA, SHA[:8])
    assert (context.user_login, context.job_id) == ("bob", "1001")
    assert gitlab.detect({"CI": "true"}) is None


def test_the_merge_request_pipeline_names_its_mr() -> None:
    context = gitlab.detect(
        _env(
            CI_MERGE_REQUEST_PROJECT_URL="https://gitlab.example/acme/api",
            CI_MERGE_REQUEST_IID="15",
        )
    )
    assert context is not None
    assert gitlab.find_merge_request_url(context) == (
        "https://gitlab.example/acme/api/-/merge_requests/15"
    )


def test_no_token_no_lookup() -> None:
    context = gitlab.detect(_env())
    assert context is not None
    assert gitlab.find_merge_request_url(context) is None


def _mr(iid: int, state: str, branch: str) -> dict:
    return {
        "iid": iid,
        "state": state,
        "source_branch": branch,
        "web_url": f"https://gitlab.example/acme/api/-/merge_requests/{iid}",
    }


def test_the_commits_mr_is_found_with_a_token(fake_api) -> None:
    fake_api.route("GET", COMMIT_MRS, [_mr(3, "merged", "old"), _mr(8, "opened", "main")])
    context = gitlab.detect(_env(fake_api.url))
    assert context is not None
    url = gitlab.find_merge_request_url(context, token="glpat-secret")
    assert url == "https://gitlab.example/acme/api/-/merge_requests/8"
    assert fake_api.calls() == [("GET", COMMIT_MRS)]
    assert fake_api.requests[0].headers["PRIVATE-TOKEN"] == "glpat-secret"


def test_the_job_token_is_used_when_no_token_is_given(fake_api) -> None:
    fake_api.route("GET", COMMIT_MRS, [])
    context = gitlab.detect(_env(fake_api.url, CI_JOB_TOKEN="job-secret"))
    assert context is not None
    assert gitlab.find_merge_request_url(context) is None
    assert fake_api.requests[0].headers["JOB-TOKEN"] == "job-secret"
    assert "PRIVATE-TOKEN" not in fake_api.requests[0].headers


def test_an_api_error_is_raised_for_the_caller_to_warn(fake_api) -> None:
    fake_api.route("GET", COMMIT_MRS, {"message": "401 Unauthorized"}, 401)
    context = gitlab.detect(_env(fake_api.url))
    assert context is not None
    with pytest.raises(Exception, match="401"):
        gitlab.find_merge_request_url(context, token="bad")


NOTES = "/api/v4/projects/acme%2Fapi/merge_requests/15/notes"


def test_the_sticky_note_is_created_once(fake_api) -> None:
    marker = gitlab.comment_marker("api", "production")
    fake_api.route("GET", NOTES, [{"id": 1, "body": "nice"}])
    fake_api.route("POST", NOTES, {"id": 2, "body": "x"}, 201)
    note_id = gitlab.upsert_merge_request_note(
        f"{fake_api.url}/acme/api/-/merge_requests/15",
        marker=marker,
        body="deploying",
        token="glpat-x",
    )
    assert note_id == 2
    posted = [r for r in fake_api.requests if r.method == "POST"]
    assert [r.body for r in posted] == [{"body": f"{marker}\ndeploying"}]


def test_the_sticky_note_is_updated_in_place(fake_api) -> None:
    marker = gitlab.comment_marker("api", "production")
    fake_api.route("GET", NOTES, [{"id": 1, "body": "nice"}, {"id": 9, "body": f"{marker}\nold"}])
    fake_api.route("PUT", f"{NOTES}/9", {"id": 9, "body": "x"})
    note_id = gitlab.upsert_merge_request_note(
        f"{fake_api.url}/acme/api/-/merge_requests/15",
        marker=marker,
        body="success",
        token="glpat-x",
    )
    assert note_id == 9
    assert ("POST", NOTES) not in fake_api.calls()
    put = [r for r in fake_api.requests if r.method == "PUT"]
    assert put[0].path == f"{NOTES}/9"
    assert put[0].body == {"body": f"{marker}\nsuccess"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gitlab.com/acme/api/-/merge_requests/4", ("https://gitlab.com", "acme/api", 4)),
        (
            "https://gl.example/group/sub/proj/-/merge_requests/12/",
            ("https://gl.example", "group/sub/proj", 12),
        ),
        ("https://gitlab.com/acme/api/merge_requests/4", None),
        ("https://github.com/acme/api/pull/4", None),
    ],
)
def test_parse_merge_request_url(url: str, expected: tuple[str, str, int] | None) -> None:
    assert gitlab.parse_merge_request_url(url) == expected


def test_dotenv_report(tmp_path: Path) -> None:
    path = tmp_path / "deploy.env"
    gitlab.write_dotenv(path, {"TRACKER_EVENT_ID": "e1", "TRACKER_LOCK_ID": ""})
    assert path.read_text() == "TRACKER_EVENT_ID=e1\nTRACKER_LOCK_ID=\n"
    with pytest.raises(ValueError, match="several lines"):
        gitlab.to_dotenv_text({"A": "x\ny"})
    with pytest.raises(ValueError, match="not a valid dotenv variable"):
        gitlab.to_dotenv_text({"A-B": "x"})
