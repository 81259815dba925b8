"""The exit codes of ``tracker-ci``: one table, read by the CLI, its help, the docs and CI.

Each ``TrackerError`` class names its code (``exit_code``); this module says what the
codes mean. It imports the standard library only, so ``tracker-ci --help`` stays fast.
``deploy run`` exits with its command's own code instead (130/143 when interrupted).
"""

from __future__ import annotations

import enum

__all__ = ["EXIT_CODES", "EXIT_FIXES", "ExitCode", "exit_codes_line"]


class ExitCode(enum.IntEnum):
    """The exit codes of ``tracker-ci`` (any other code is ``deploy run``'s command's)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    LOCKED = 3
    UNREACHABLE = 4
    AUTH = 5
    NOT_FOUND = 6
    FROZEN = 7
    SUPERSEDED = 8
    LOCK_LOST = 9
    NOT_APPROVED = 10


#: What each exit code means. The words before a colon are the short name the root
#: ``--help`` shows; README and docs/cli.md print this table (a test keeps them equal).
EXIT_CODES: dict[int, str] = {
    ExitCode.OK: "ok",
    ExitCode.ERROR: (
        "error: the server failed (5xx) or answered something unexpected; an unexpected exception"
    ),
    ExitCode.USAGE: (
        "usage: a bad option or enum value, a missing `--service`, a bad config file, "
        "a `--pr-url` that is no PR/MR, the server said 400"
    ),
    ExitCode.LOCKED: "lock held: by another deployment (or still held when `--wait` ran out)",
    ExitCode.UNREACHABLE: "unreachable: the server could not be reached, or is not a Tracker",
    ExitCode.AUTH: "auth refused: a missing, bad, revoked or out-of-scope token (401/403)",
    ExitCode.NOT_FOUND: (
        "not found: the event, lock or token; `deploy finish` with no open deployment"
    ),
    ExitCode.FROZEN: "refused by a freeze: a hard freeze window covers the deployment",
    ExitCode.SUPERSEDED: (
        "superseded by a newer deploy: a newer deploy of the same lock goes instead"
    ),
    ExitCode.LOCK_LOST: "lock lost: the lease expired or was released while the deploy ran",
    ExitCode.NOT_APPROVED: (
        "not approved: `--require-approval` and the deployment was rejected, or "
        "`--approval-timeout` ran out"
    ),
}


#: What to do about each failing code: the fix-it paragraph of a failed GitHub step.
EXIT_FIXES: dict[int, str] = {
    ExitCode.ERROR: "The Tracker server answered with an error; its message is above. Check the "
    "server's log, or use fail policy open to let deploys go on when the server misbehaves.",
    ExitCode.USAGE: "Check the command's options (the action's `with:` inputs) against the "
    "README: names and allowed values.",
    ExitCode.LOCKED: "Another deploy holds the lock for this service and environment. Wait for "
    "it to finish, wait longer (`--wait`, the action's `wait:`), or release a stale lock.",
    ExitCode.UNREACHABLE: "The Tracker server could not be reached. Check its URL "
    "(`TRACKER_URL`, the action's `server-url`), or use fail policy open to deploy untracked "
    "when it is down.",
    ExitCode.AUTH: "The server refused the token. Pass a valid token for this service "
    "(`TRACKER_TOKEN`, the action's `token:` from a secret), or ask an admin for one "
    "(`tracker-ci token create`).",
    ExitCode.NOT_FOUND: "The event or lock does not exist (any more). Check the event id or "
    "lock id.",
    ExitCode.FROZEN: "A hard freeze window covers this deployment. Wait for it to end, or pass "
    "it with a reason (`--break-glass`) if this deploy must go out now.",
    ExitCode.SUPERSEDED: "A newer deploy of the same service and environment was queued and "
    "goes instead of this one; nothing to fix unless this one had to go out.",
    ExitCode.LOCK_LOST: "The deployment lock expired or was released while the deploy ran, so "
    "another deploy may have started. Check what ran, and raise `--lock-ttl` if the deploy "
    "stalled.",
    ExitCode.NOT_APPROVED: "The deployment needed an approval and was rejected or not approved "
    "in time; the command did not run. See the event's changelog for who rejected it and "
    "why, or ask a reviewer to approve sooner (`tracker-ci event approve ID`, raise "
    "`--approval-timeout`).",
}


def exit_codes_line() -> str:
    """``0 ok, 1 error, 2 usage, ...``: every code with its short name, for ``--help``."""
    return ", ".join(f"{code} {meaning.split(':')[0]}" for code, meaning in EXIT_CODES.items())
