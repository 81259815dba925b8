"""WireChoice takes the vocabulary of the models by name, or as values."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tracker_ci import models
from tracker_ci.commands.common import WireChoice

pytestmark = pytest.mark.unit


def _command(choice: WireChoice) -> click.Command:
    @click.command()
    @click.option("--status", type=choice, required=True)
    def show(status: models.Status) -> None:
        click.echo(status.value)

    return show


@pytest.mark.parametrize(
    "choice",
    [
        WireChoice("Status", aliases="STATUS_ALIASES", only="FINISH_STATUSES"),
        WireChoice("Status", aliases=models.STATUS_ALIASES, only=models.FINISH_STATUSES),
    ],
    ids=["by name", "by value"],
)
def test_finish_statuses_and_aliases(choice: WireChoice) -> None:
    # In the enum's order, as the --help metavar shows them.
    assert choice.choices() == ["failure", "success", "warning", "error", "close", "done"]
    assert set(choice.choices()) == set(models.FINISH_STATUSES)
    runner = CliRunner()

    assert runner.invoke(_command(choice), ["--status", "Canceled"]).output == "failure\n"
    assert runner.invoke(_command(choice), ["--status", "close"]).output == "close\n"
    refused = runner.invoke(_command(choice), ["--status", "start"])
    assert refused.exit_code == 2, refused.output
    assert (
        "'start' is not one of: failure, success, warning, error, close, done "
        "(or failed, cancelled, canceled, timedout)"
    ) in refused.output


def test_without_tables_every_member_but_unspecified() -> None:
    choice = WireChoice("Priority")

    assert choice.choices() == ["P1", "P2", "P3", "P4", "P5"]
    assert choice.aliases == {} and choice.only is None
