"""GitHub Actions context, outputs, and the PR lookup/comment against a canned API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker_ci.ci import github

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"


def _env(tmp_path: Path, event_name: str, payload: dict, **extra: str) -> dict[str, str]:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(payload))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_JOB": "deploy",
        "GITHUB_ACTOR": "alice",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_API_URL": "https://github.example/api/v3",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        **extra,
    }


def test_detect_reads_the_github_variables(tmp_path: Path) -> None:
    context = github.detect(_env(tmp_path, "push", {}))
    assert context is not None
    assert (context.repository, context.sha, context.actor) == ("acme/api", SHA, "alice")
    assert (context.run_id, context.run_attempt, context.job) == ("4242", "2", "deploy")
    assert context.short_sha == "0123456"
    assert context.api_url == "https://github.example/api/v3"
    assert context.run_url == "https://github.example/acme/api/actions/runs/4242"


def test_detect_is_none_outside_github_actions() -> None:
    assert github.detect({"CI": "true", "USER": "bob"}) is None


@pytest.mark.parametrize("event_name", ["pull_request", "pull_request_target"])
def test_pull_request_url_comes_from_the_payload(tmp_path: Path, event_name: str) -> None:
    payload = {"pull_request": {"number": 7, "html_url": "https://github.example/acme/api/pull/7"}}
    context = github.detect(_env(tmp_path, event_name, payload))
    assert context is not None
    # No token: the payload alone answers, no API call is possible.
    assert github.find_pull_request_url(context) == "https://github.example/acme/api/pull/7"


@pytest.mark.parametrize("event_name", ["push", "workflow_dispatch"])
def test_push_and_dispatch_have_no_pull_request_without_the_api(
    tmp_path: Path, event_name: str
) -> None:
    payload = {"ref": "refs/heads/main", "inputs": {}}
    context = github.detect(_env(tmp_path, event_name, payload))
    assert context is not None
    assert github.find_pull_request_url(context, token=None) is None


def test_an_unreadable_payload_is_no_pull_request(tmp_path: Path) -> None:
    env = _env(tmp_path, "pull_request", {})
    Path(env["GITHUB_EVENT_PATH"]).write_text("{not json")
    context = github.detect(env)
    assert context is not None and github.find_pull_request_url(context) is None


def _pull(number: int, state: str, branch: str, api: str) -> dict:
    return {
        "number": number,
        "state": state,
        "html_url": f"https://github.example/acme/api/pull/{number}",
        "url": f"{api}/repos/acme/api/pulls/{number}",
        "head": {"ref": branch, "sha": SHA},
    }


def test_push_finds_the_commits_pull_request_through_the_api(tmp_path: Path, fake_api) -> None:
    fake_api.route(
        "GET",
        f"/repos/acme/api/commits/{SHA}/pulls",
        [_pull(3, "closed", "old", fake_api.url), _pull(9, "open", "main", fake_api.url)],
    )
    env = _env(tmp_path, "push", {}, GITHUB_API_URL=fake_api.url)
    context = github.detect(env)
    assert context is not None
    url = github.find_pull_request_url(context, token="ghs_secret")
    assert url == "https://github.example/acme/api/pull/9"
    assert fake_api.calls() == [("GET", f"/repos/acme/api/commits/{SHA}/pulls")]
    assert fake_api.requests[0].headers["Authorization"] == "token ghs_secret"


def test_a_commit_without_pull_request_is_none(tmp_path: Path, fake_api) -> None:
    fake_api.route("GET", f"/repos/acme/api/commits/{SHA}/pulls", [])
    context = github.detect(_env(tmp_path, "workflow_dispatch", {}, GITHUB_API_URL=fake_api.url))
    assert context is not None
    assert github.find_pull_request_url(context, token="t") is None


def test_an_api_error_is_raised_for_the_caller_to_warn(tmp_path: Path, fake_api) -> None:
    fake_api.route("GET", f"/repos/acme/api/commits/{SHA}/pulls", {"message": "Bad creds"}, 401)
    context = github.detect(_env(tmp_path, "push", {}, GITHUB_API_URL=fake_api.url))
    assert context is not None
    with pytest.raises(Exception, match="Bad creds"):
        github.find_pull_request_url(context, token="bad")


def _comment(comment_id: int, body: str, api: str) -> dict:
    return {
        "id": comment_id,
        "body": body,
        "url": f"{api}/repos/acme/api/issues/comments/{comment_id}",
        "html_url": f"https://github.example/acme/api/pull/7#issuecomment-{comment_id}",
    }


def test_the_sticky_comment_is_created_once(fake_api) -> None:
    marker = github.comment_marker("api", "production")
    fake_api.route("GET", "/repos/acme/api/issues/7/comments", [_comment(1, "LGTM", fake_api.url)])
    fake_api.route(
        "POST", "/repos/acme/api/issues/7/comments", _comment(2, "new", fake_api.url), 201
    )
    url = github.upsert_pull_request_comment(
        "https://github.example/acme/api/pull/7",
        marker=marker,
        body="deploying",
        token="t",
        api_url=fake_api.url,
    )
    assert url.endswith("#issuecomment-2")
    posted = [r for r in fake_api.requests if r.method == "POST"]
    assert len(posted) == 1
    assert posted[0].body == {"body": f"{marker}\ndeploying"}


def test_the_sticky_comment_is_updated_in_place(fake_api) -> None:
    marker = github.comment_marker("api", "production")
    other = github.comment_marker("api", "UAT")
    fake_api.route(
        "GET",
        "/repos/acme/api/issues/7/comments",
        [
            _comment(1, f"{other}\nold UAT", fake_api.url),
            _comment(5, f"{marker}\nold", fake_api.url),
        ],
    )
    fake_api.route("PATCH", "/repos/acme/api/issues/comments/5", _comment(5, "x", fake_api.url))
    github.upsert_pull_request_comment(
        "https://github.example/acme/api/pull/7",
        marker=marker,
        body="success in 12s",
        token="t",
        api_url=fake_api.url,
    )
    assert ("POST", "/repos/acme/api/issues/7/comments") not in fake_api.calls()
    patched = [r for r in fake_api.requests if r.method == "PATCH"]
    assert [r.path for r in patched] == ["/repos/acme/api/issues/comments/5"]
    assert patched[0].body == {"body": f"{marker}\nsuccess in 12s"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/api/pull/12", ("acme/api", 12)),
        ("https://github.example/acme/api/pull/3/", ("acme/api", 3)),
        ("https://github.com/acme/api/issues/12", None),
        ("https://gitlab.com/acme/api/-/merge_requests/1", None),
        ("not a url", None),
    ],
)
def test_parse_pull_request_url(url: str, expected: tuple[str, int] | None) -> None:
    assert github.parse_pull_request_url(url) == expected


def test_to_output_text_uses_a_delimiter_for_multiline_values() -> None:
    text = github.to_output_text({"event-id": "abc", "notes": "line 1\nline 2", "empty": None})
    lines = text.splitlines()
    assert lines[0] == "event-id=abc"
    assert lines[1].startswith("notes<<ghadelimiter_")
    delimiter = lines[1].split("<<", 1)[1]
    assert lines[2:5] == ["line 1", "line 2", delimiter]
    assert lines[5] == "empty="


def test_write_if_possible_appends_to_github_output(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.write_text("earlier=1\n")
    assert github.write_if_possible({"status": "start"}, {"GITHUB_OUTPUT": str(out)})
    assert out.read_text() == "earlier=1\nstatus=start\n"
    assert not github.write_if_possible({"status": "start"}, {})


def test_append_summary_and_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    assert github.append_summary("## Deployed", {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text() == "## Deployed\n"
    assert github.mask("trk_secret", {"GITHUB_ACTIONS": "true"})
    assert not github.mask("trk_secret", {})
    assert capsys.readouterr().out == "::add-mask::trk_secret\n"
