"""``tracker-ci webhook``: against the real bundled server (its dispatcher thread sends to
a loopback receiver); exit codes and the secret never shown."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke
from tests.support.names import unique
from tests.support.receivers import run_receiver
from tests.support.waiting import eventually
from tracker_ci.commands.webhook import KINDS
from tracker_ci.models import WEBHOOK_KINDS

pytestmark = pytest.mark.e2e


def _wait_delivered(invoke: Invoke, hook_id: str, count: int) -> list[dict]:
    """The hook's deliveries, once the server's dispatcher has delivered ``count``."""

    def delivered() -> list[dict]:
        shown = invoke("-o", "json", "webhook", "deliveries", hook_id)
        assert shown.exit_code == 0, shown.output
        found = json.loads(shown.stdout)
        assert sum(d["state"] == "delivered" for d in found) >= count, found
        return found

    return eventually(delivered, interval=0.2, message=f"{count} deliveries")


def test_add_list_test_deliveries_remove(invoke: Invoke) -> None:
    service = unique("hooked")
    with run_receiver() as receiver:
        added = invoke(
            "webhook",
            "add",
            receiver.url + "/in",
            "--event",
            "deployment.*",
            "--service",
            service,
            "--secret",
            "topsecret",
        )
        assert added.exit_code == 0, added.output
        hook_id = added.stdout.strip()
        listed = invoke("webhook", "list")
        assert listed.exit_code == 0 and hook_id in listed.stdout
        assert "topsecret" not in listed.stdout
        tested = invoke("webhook", "test", hook_id)
        assert tested.exit_code == 0 and "webhook.test" in tested.stdout
        started = invoke("deploy", "start", "--service", service, "--environment", "UAT")
        assert started.exit_code == 0, started.output
        found = _wait_delivered(invoke, hook_id, 2)
        requests = receiver.wait_for(2)
    assert {d["type"] for d in found} == {"webhook.test", "deployment.started"}
    assert all(d["responseCode"] == 200 and d["attempts"] == 1 for d in found)
    for request in requests:
        mac = hmac.new(b"topsecret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-tracker-signature-256"] == f"sha256={mac}"
    table = invoke("webhook", "deliveries", hook_id)
    assert "delivered" in table.stdout and "200" in table.stdout
    removed = invoke("webhook", "remove", hook_id)
    assert removed.exit_code == 0, removed.output
    again = invoke("webhook", "remove", hook_id)
    assert again.exit_code == 6, again.output


def test_bad_input_is_a_one_line_error(invoke: Invoke) -> None:
    result = invoke("webhook", "add", "https://example.com", "--event", "deploy.done")
    assert result.exit_code == 2, result.output  # the server refused the input: 400
    assert "matches no event" in result.output
    missing = invoke("webhook", "add", "https://example.com")
    assert missing.exit_code == 2


def test_webhooks_need_the_admin_token(auth_server, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    invoke = Invoke(auth_server.url, tmp_path)
    refused = invoke("webhook", "list")
    assert refused.exit_code == 5, refused.output
    allowed = invoke("webhook", "list", env={"TRACKER_TOKEN": ADMIN_TOKEN})
    assert allowed.exit_code == 0, allowed.output


def test_the_cli_kinds_are_the_models_kinds() -> None:
    assert KINDS == WEBHOOK_KINDS
