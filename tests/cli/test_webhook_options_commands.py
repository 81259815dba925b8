"""``tracker-ci webhook add`` with each sink's options, and a webhook a receiver's 410
disabled as ``webhook list`` shows it: against the real bundled server."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique
from tests.support.receivers import run_receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


def _listed(invoke: Invoke, hook_id: str) -> dict:
    shown = invoke("-o", "json", "webhook", "list")
    assert shown.exit_code == 0, shown.output
    (found,) = [hook for hook in json.loads(shown.stdout) if hook["id"] == hook_id]
    return dict(found)


def test_add_keeps_each_sinks_options(invoke: Invoke) -> None:
    slack = invoke(
        "webhook", "add", "https://hooks.example.com/x", "--kind", "slack", "--event", "*",
        "--service", unique("opts"), "--mention", "!here",
    )  # fmt: skip
    assert slack.exit_code == 0, slack.output
    assert _listed(invoke, slack.stdout.strip())["options"] == {
        "mention": "!here",
        "environmentUrl": "",
        "dashboardUid": "",
        "panelId": None,
    }
    grafana = invoke(
        "webhook", "add", "https://grafana.example.com", "--kind", "grafana", "--event", "*",
        "--service", unique("opts"), "--dashboard-uid", "deploys", "--panel-id", "3",
    )  # fmt: skip
    assert grafana.exit_code == 0, grafana.output
    options = _listed(invoke, grafana.stdout.strip())["options"]
    assert (options["dashboardUid"], options["panelId"]) == ("deploys", 3)
    wrong = invoke(
        "webhook", "add", "https://example.com", "--event", "*", "--environment-url",
        "https://app.example",
    )  # fmt: skip
    assert wrong.exit_code == 2 and "is for github-deployments webhooks" in wrong.output


def test_a_webhook_its_receiver_says_is_gone_shows_disabled(invoke: Invoke) -> None:
    with run_receiver(lambda _r: (410, None)) as receiver:
        added = invoke("webhook", "add", receiver.url, "--event", "alert.fired")
        assert added.exit_code == 0, added.output
        hook_id = added.stdout.strip()
        assert invoke("webhook", "test", hook_id).exit_code == 0

        def disabled() -> dict:
            found = _listed(invoke, hook_id)
            assert found["disabledAt"], found
            return found

        found = eventually(disabled, interval=0.2, message="the webhook disabled")
    assert found["disabledReason"].startswith("the receiver answered 410 (gone)")
    table = invoke("webhook", "list")
    row = next(line for line in table.stdout.splitlines() if hook_id in line)
    assert "disabled: the receiver answered 410" in row
    again = invoke("webhook", "test", hook_id)
    assert again.exit_code == 2 and "is disabled" in again.output
    assert invoke("webhook", "remove", hook_id).exit_code == 0


def test_secret_rotate_keeps_the_previous_secret_signing_for_a_while(invoke: Invoke) -> None:
    added = invoke(
        "webhook", "add", "https://example.com/hook", "--event", "*", "--service",
        unique("rotated"), "--secret", "old-secret",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    hook_id = added.stdout.strip()
    rotated = invoke(
        "webhook", "secret", "rotate", hook_id, "--keep-previous", "600",
        env={"TRACKER_WEBHOOK_SECRET": "new-secret"},
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert "rotated" in rotated.stdout and "previous secret signs until" in rotated.stdout
    assert "secret" not in _listed(invoke, hook_id) and "new-secret" not in rotated.output
    assert _listed(invoke, hook_id)["previousSecretUntil"]
    unknown = invoke("webhook", "secret", "rotate", "nope", "--secret", "x")
    assert unknown.exit_code == 2, unknown.output  # not a webhook id: 400
    assert invoke("webhook", "remove", hook_id).exit_code == 0
