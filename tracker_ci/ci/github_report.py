"""What a tracker-ci step shows in GitHub Actions, written in one place.

The CLI calls this module (through its reporter) whenever it runs in GitHub Actions,
whether in a ``run:`` step or inside our action: step outputs (``GITHUB_OUTPUT``), the
state the action's post step reads back (``GITHUB_STATE``), the variables later steps see
(``GITHUB_ENV``), the job summary (``GITHUB_STEP_SUMMARY``) and the annotations
(``::warning::``, ``::error::``). The action itself writes none of these.

``TRACKER_STEP=post`` (set by the action's post step) words the summary of a deployment
the post step closed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tracker_ci.exit_codes import EXIT_FIXES

__all__ = [
    "OUTPUT_NAMES",
    "StepReport",
    "escape_command_data",
    "render_summary",
]

#: The step outputs a deployment writes (action.yml declares the same, plus ``id``).
OUTPUT_NAMES = ("event-id", "lock-id", "status", "duration", "event-url")
_ICONS = {"success": "✅", "failure": "❌", "start": "🚀", "locked": "🔒", "unlocked": "🔓"}


def escape_command_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR and LF) as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def render_summary(rows: Mapping[str, str], *, heading: str, status: str, note: str = "") -> str:
    """A job summary section: heading with the status icon, a table of rows, a note."""
    icon = _ICONS.get(status, "ℹ️")
    lines = [f"### {icon} {heading}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows.items() if value]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


class StepReport:
    """The GitHub side of one tracker-ci command; does nothing outside GitHub Actions."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if environ is None else environ
        self.active = self.env.get("GITHUB_ACTIONS") == "true"
        self.post_step = self.env.get("TRACKER_STEP") == "post"
        #: Whether any GitHub file command is there to write to (a job, or a test).
        self.files = any(
            self.env.get(name)
            for name in ("GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
        )

    # ------------------------------------------------------------ file commands
    def _append(self, variable: str, values: Mapping[str, Any]) -> None:
        path = self.env.get(variable)
        if path and values:
            from tracker_ci.ci import github  # in GitHub Actions only

            with open(path, "a", encoding="utf-8") as handle:
                handle.write(github.to_output_text(values))

    def outputs(self, values: Mapping[str, Any]) -> None:
        """Step outputs (action.yml declares them; ``id`` is upstream's ``event-id``)."""
        values = dict(values)
        if "event-id" in values:
            values["id"] = values["event-id"]
        self._append("GITHUB_OUTPUT", values)

    def save_state(self, **values: str) -> None:
        """What the action's post step reads back as ``STATE_<name>``."""
        self._append("GITHUB_STATE", values)

    def export(self, values: Mapping[str, str]) -> None:
        """Variables for the later steps of the job (``GITHUB_ENV``)."""
        self._append("GITHUB_ENV", {k: v for k, v in values.items() if v})

    def summary(self, markdown: str) -> None:
        """Append to the job summary."""
        from tracker_ci.ci import github

        github.append_summary(markdown, self.env)

    def annotate(self, kind: str, message: str) -> None:
        """A ``::warning::``, ``::notice::`` or ``::error::`` annotation on the step."""
        if self.active:
            print(f"::{kind} title=tracker-ci::{escape_command_data(message)}", flush=True)

    def failed(self, message: str, exit_code: int, fix: str | None = None) -> None:
        """The command failed: an error annotation and a fix-it paragraph in the summary
        (``fix``, else the exit code's from the exit-code table)."""
        if not self.active:
            return
        self.annotate("error", message)
        paragraph = f"### ❌ tracker-ci: the step failed\n\n{message}\n"
        fix = EXIT_FIXES.get(exit_code, "") if fix is None else fix
        if fix:
            paragraph += f"\n**How to fix it:** {fix}\n"
        self.summary(paragraph)

    # --------------------------------------------------------------- deployment
    def _rows(self, state: Any, *, owner: str, pr_url: str, lock_note: str) -> dict[str, str]:
        actor = self.env.get("GITHUB_ACTOR", "")
        by = owner or actor
        lock_cell = f"`{state.lock_id}`" if state.lock_id else "none"
        if lock_note:
            lock_cell = f"`{state.lock_id}` {lock_note}" if state.lock_id else lock_note
        if state.event_url:
            event_cell = f"[`{state.event_id}`]({state.event_url})"
        else:
            event_cell = f"`{state.event_id}`" if state.event_id else "none (not tracked)"
        duration = "" if state.duration is None else f"{state.duration:.3f}".rstrip("0")
        return {
            "Service": f"`{state.service}`" if state.service else "",
            "Environment": f"`{state.environment}`" if state.environment else "",
            "Status": f"{_ICONS.get(state.status, 'ℹ️')} {state.status}",
            "Deployed by": by + (f" (run by {actor})" if actor and actor != by else ""),
            "Pull request": pr_url,
            "Lock": lock_cell,
            "Duration": f"{duration.rstrip('.')} s" if duration else "",
            "Event": event_cell,
        }

    def _deployment_outputs(self, state: Any, *, closed: bool) -> None:
        """A deployment's step outputs; once closed, with its duration in seconds."""
        values = {
            "event-id": state.event_id,
            "lock-id": state.lock_id,
            "status": state.status,
            "event-url": state.event_url,
        }
        if closed:
            values["duration"] = "" if state.duration is None else f"{state.duration:.3f}"
        self.outputs(values)

    def deployment_opened(self, state: Any, *, owner: str, pr_url: str, running: bool) -> None:
        """The event is open: outputs, the post step's state, and (deploy start) a summary."""
        if not (self.active or self.files):
            return
        if not state.tracked:
            self.annotate(
                "warning",
                "The deployment is not tracked: the Tracker server could not be reached or "
                "failed, and fail policy open let the deploy go on UNTRACKED and UNLOCKED (no "
                "event, and no deployment lock keeps another deploy of this service out). "
                "Fail policy closed stops instead.",
            )
        self._deployment_outputs(state, closed=False)
        if state.tracked:
            # Saved before the command runs, so that the post step can close what was
            # opened even when the job is cancelled or the container killed mid-deploy.
            self.save_state(
                event_id=state.event_id, lock_id=state.lock_id, pr_url=pr_url, closed="false"
            )
        if running:
            return
        fence = str(state.fence) if state.fence else ""  # the fencing token, as deploy run's
        self.export(
            {
                "TRACKER_EVENT_ID": state.event_id,
                "TRACKER_LOCK_ID": state.lock_id,
                "TRACKER_FENCE": fence,
            }
        )
        note = (
            "The event stays open for the next steps: `tracker-ci deploy finish` (the "
            "action's `mode: finish`), or the action's post step at the end of the job, "
            "closes it."
        )
        rows = self._rows(state, owner=owner, pr_url=pr_url, lock_note="")
        heading = f"Deploying {state.service} to {state.environment}"
        self.summary(render_summary(rows, heading=heading, status=state.status, note=note))

    def deployment_closed(
        self, state: Any, *, owner: str, pr_url: str, detail: str, ran: bool
    ) -> None:
        """The event is closed: outputs, state, summary; an error when the deploy failed."""
        if not (self.active or self.files):
            return
        self._deployment_outputs(state, closed=True)
        if state.tracked:
            self.save_state(closed="true")
        note = _sentence(detail)
        if state.closed_before:
            heading = f"Deployment {state.service or state.event_id} was already closed"
            note = (
                f"This step found the deployment already closed as **{state.status}** (by a "
                "later step or another job): nothing changed."
            )
        elif self.post_step:
            heading = (
                f"Deployment of {state.service} to {state.environment} closed by the post step"
            )
            job = self.env.get("TRACKER_JOB_STATUS") or "unknown"
            note = (
                f"This step left the deployment open and the job ended with status **{job}**: "
                f"the post step closed it as **{state.status}** and released its lock."
            )
        elif ran:
            heading = f"Deployment of {state.service} to {state.environment}"
        else:
            heading = f"Deployment {state.service or state.event_id} closed"
        rows = self._rows(state, owner=owner, pr_url=pr_url, lock_note="released")
        self.summary(render_summary(rows, heading=heading, status=state.status, note=note))
        if ran and detail:
            outcome = (
                f"the deployment was closed as {state.status}"
                if state.tracked
                else "it was not tracked"
            )
            self.annotate("error", f"{_sentence(detail)[:-1]}; {outcome}.")

    # --------------------------------------------------------------------- lock
    def lock_taken(self, lock: Any) -> None:
        """``lock acquire``: outputs, state for the post step, env and summary."""
        if not (self.active or self.files):
            return
        self.outputs({"lock-id": lock.id, "event-id": lock.event_id, "status": "locked"})
        self.save_state(lock_id=lock.id, closed="false")
        self.export({"TRACKER_LOCK_ID": lock.id})
        rows = {
            "Service": f"`{lock.service}`",
            "Environment": f"`{lock.environment}`",
            "Status": "🔒 locked",
            "Held by": lock.who,
            "Lock": f"`{lock.id}`",
        }
        heading = f"Lock taken on {lock.service} in {lock.environment}"
        self.summary(render_summary(rows, heading=heading, status="locked"))

    def lock_released(self, what: str, lock_id: str, *, already: bool = False) -> None:
        """``lock release``: outputs, state and summary (``already``: it was gone)."""
        if not (self.active or self.files):
            return
        self.outputs({"lock-id": lock_id, "status": "unlocked"})
        self.save_state(closed="true")
        heading = "Lock released" if not self.post_step else "Lock released by the post step"
        if already:
            heading = "Lock already released (nothing to do)"
        rows = {"Lock": what, "Status": "🔓 unlocked"}
        self.summary(render_summary(rows, heading=heading, status="unlocked"))
