"""``tracker-ci`` and ``python -m tracker_ci``: the one catch-all around the CLI.

Known errors become exit codes in ``tracker_ci.cli``; anything else that escapes is a bug
or an environment problem, reported here as one line on stderr with exit 1 (the
traceback only with ``--debug`` or ``TRACKER_DEBUG``).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any

__all__ = ["main"]

# At exit, after every other exit handler (they run last-registered first): the objects the
# process built are frozen out of the collections the interpreter runs while it shuts down.
# Those passes over the imported libraries' ~100,000 objects were 15-20 ms of CPU after
# the work was done (`deploy run`'s exit ran beside the next deploy's start); the objects
# are still freed, and the files and streams closed, as before.
atexit.register(gc.freeze)


def _debugging(argv: list[str]) -> bool:
    flag = os.environ.get("TRACKER_DEBUG", "").strip().lower()
    return "--debug" in argv or flag in ("1", "true", "yes", "on")


def _unexpected(exc: Exception, args: list[str]) -> None:
    """The catch-all's one line (JSON under ``-o json``); the traceback with --debug."""
    if _debugging(args):
        import traceback

        traceback.print_exc()
    detail = str(exc).splitlines()[0] if str(exc) else ""
    message = (
        f"unexpected {type(exc).__name__}{': ' + detail if detail else ''}"
        " (run again with --debug for the traceback)"
    )
    try:
        from tracker_ci.output import emit_error, wants_json
    except Exception:  # the CLI itself cannot be imported: plain text is all there is
        print(f"error: {message}", file=sys.stderr)
        return
    emit_error(message, 1, as_json=wants_json(args))


def _from_variable(exc: Any) -> str:
    """`` (from TRACKER_X)`` when a bad option value came from a variable, not the line."""
    from click.core import ParameterSource

    param, ctx = getattr(exc, "param", None), exc.ctx
    if param is None or ctx is None or not param.name:
        return ""
    if ctx.get_parameter_source(param.name) != ParameterSource.ENVIRONMENT:
        return ""
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    for name in names:
        if os.environ.get(name):
            # The user never typed this option: name the variable they must fix.
            return f" (from {name})"
    return ""


def _usage_error(exc: Any, args: list[str]) -> int:
    """One line for a click usage error, naming the --help to read."""
    from tracker_ci.output import emit_error, wants_json

    # command_path starts with the program name as click saw it; show it as tracker-ci.
    words = exc.ctx.command_path.split()[1:] if exc.ctx else []
    where = " ".join(["tracker-ci", *words])
    message = exc.format_message() + _from_variable(exc)
    line = f"{message} (see '{where} --help')"
    emit_error(line, int(exc.exit_code), as_json=wants_json(args))
    _report(message, int(exc.exit_code))
    return int(exc.exit_code)


def _report(message: str, code: int) -> None:
    from tracker_ci.cli import report_failure

    report_failure(message, code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit with its code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        import click

        from tracker_ci.cli import cli

        try:
            code = cli.main(args=args, prog_name="tracker-ci", standalone_mode=False)
        # click >= 8.2 raises this; 8.1 printed the help and exited 0 by itself.
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:
            # `tracker-ci` or `tracker-ci lock` alone: the help itself, not an error line.
            print(exc.format_message(), file=sys.stderr)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            sys.exit(_usage_error(exc, args))
        except click.ClickException as exc:
            from tracker_ci.output import emit_error, wants_json

            emit_error(exc.format_message(), exc.exit_code, as_json=wants_json(args))
            _report(exc.format_message(), exc.exit_code)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            # click turns Ctrl-C into Abort; keep the shell's convention for SIGINT.
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            print("interrupted" if interrupted else "aborted", file=sys.stderr)
            sys.exit(130 if interrupted else 1)
        sys.exit(code if isinstance(code, int) else 0)
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
        _unexpected(exc, args)
        sys.exit(1)


if __name__ == "__main__":
    main()
