"""The board shows failing webhooks (kind, receiver host, count, last answer), never a
receiver's URL path, and nothing when every delivery went through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import API, create_event
from tests.support.receivers import run_receiver

pytestmark = pytest.mark.server


def test_the_board_shows_failing_webhooks_only(make_client: Any) -> None:
    client = make_client(webhook_dispatcher=False, alert_timer=False)
    with (
        run_receiver(lambda _r: (502, {"error": "bad gateway"})) as failing,
        run_receiver() as fine,
    ):
        for receiver, path in ((failing, "/T0/B0/secret-path"), (fine, "/ok-path")):
            body = {"url": receiver.url + path, "events": ["deployment.started"]}
            assert client.post(f"{API}/webhooks", json=body).status_code == 201
        assert "Failing webhooks" not in client.get("/").text
        create_event(client, status="start")
        assert client.app.state.dispatcher.run_once() == 2
    board = client.get("/")
    assert board.status_code == 200
    section = board.text[board.text.index('id="webhooks-h"') :]
    section = section[: section.index("</section>")]
    assert "Failing webhooks" in section and "generic" in section
    assert "<td>127.0.0.1</td>" in section and "<td>1</td>" in section
    assert "<td>502</td>" in section
    assert "secret-path" not in board.text and "ok-path" not in board.text
    assert section.count("<tr class=") == 1  # the one that works is not listed
