"""``tracker-ci`` and ``python -m tracker_ci``: the one catch-all around the CLI.

Known errors become exit codes in ``tracker_ci.cli``; anything else that escapes is a bug
or an environment problem, reported here as one line on stderr with exit 1 (the
traceback only with ``--debug`` or ``TRACKER_DEBUG``).
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def _debugging(argv: list[str]) -> bool:
    flag = os.environ.get("TRACKER_DEBUG", "").strip().lower()
    return "--debug" in argv or flag in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit with its code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        from tracker_ci.cli import cli

        cli.main(args=args, prog_name="tracker-ci", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `tracker-ci event list | head`: the reader went away; that is not an error.
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:
        if _debugging(args):
            import traceback

            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"error: unexpected {type(exc).__name__}{': ' + detail if detail else ''}"
            " (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
