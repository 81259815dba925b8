"""``tracker-ci event import``: events with their history, from JSON lines or another server.

Every event goes to our server's ``POST /events/batch`` as history (its ``createdAt``,
duration, changelog and id kept), in batches of up to 1,000 and under the server's body
limit. Each item carries an idempotency key derived from the event itself, and the server
keeps the source's event id: a re-run, or a run resumed after an interruption, answers
"replayed" for what was copied before instead of writing it twice (docs/import.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from tracker_ci.commands.common import AppState, pass_state

if TYPE_CHECKING:
    from tracker_ci.client import TrackerClient
    from tracker_ci.models import Event
    from tracker_ci.wire.batch import BatchItemResult

__all__ = ["import_events"]

#: Items per batch: the server's limit.
MAX_BATCH = 1000
#: Bytes per batch, under the server's default body limit (1 MiB); a 413 halves the batch.
MAX_BATCH_BYTES = 900_000
#: Refusals named one by one on stderr; the rest are counted.
SHOWN_REFUSALS = 20


# ------------------------------------------------------------------ reading events
def read_line(number: int, text: str) -> Event | None:
    """The event on line ``number`` (None for a blank line); a ConfigError naming the line."""
    from pydantic import ValidationError

    from tracker_ci.exceptions import ConfigError
    from tracker_ci.models import Event

    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"line {number}: not JSON ({exc.msg}, column {exc.colno})") from None
    if isinstance(data, dict) and set(data) == {"event"}:
        data = data["event"]  # a GET /event/{id} answer
    if not isinstance(data, dict):
        raise ConfigError(f"line {number}: not a JSON object: give one event per line")
    try:
        event = Event.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the event"
        raise ConfigError(f"line {number}: {where}: {first['msg']}") from None
    if event.metadata.created_at is None:
        raise ConfigError(
            f"line {number}: metadata.createdAt is missing: an import keeps real dates, "
            "so every event needs its createdAt"
        )
    return event


def as_item(event: Event) -> dict[str, Any]:
    """The batch item of an event: the event as history, with a key derived from it (the
    same event always gets the same key, so sending it again replays)."""
    item = event.to_wire()
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    item["idempotencyKey"] = "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:48]
    return item


# ------------------------------------------------------------------ sending batches
@dataclass
class Tally:
    """What an import did so far."""

    read: int = 0
    created: int = 0
    replayed: int = 0
    refused: int = 0
    #: The exit code of the first refusal (0: none).
    refusal_code: int = 0

    def line(self) -> str:
        return (
            f"{self.read} events: {self.created} created, {self.replayed} replayed, "
            f"{self.refused} refused"
        )


@dataclass
class Sender:
    """Buffers items and sends them in batches (by count and by bytes)."""

    client: TrackerClient
    tally: Tally
    batch_size: int = MAX_BATCH
    max_bytes: int = MAX_BATCH_BYTES
    #: Called after each batch the target answered.
    on_sent: Callable[[], None] = lambda: None
    pending: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    pending_bytes: int = 0
    #: The source's number of events, when it says (--from).
    total: int = 0

    def progress(self) -> str:
        """``N of T events: ... created, ... replayed, ... refused``."""
        line = self.tally.line()
        return line.replace(" events", f" of {self.total} events", 1) if self.total else line

    def add(self, where: str, item: dict[str, Any]) -> None:
        """Queue one item (``where`` names it in a refusal: "line 3", "event <id>")."""
        size = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if self.pending and self.pending_bytes + size > self.max_bytes:
            self.flush()
        self.pending.append((where, item, size))
        self.pending_bytes += size
        self.tally.read += 1
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Send what is queued."""
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        if batch:
            self._send(batch)
            self.on_sent()

    def _send(self, batch: list[tuple[str, dict[str, Any], int]]) -> None:
        from tracker_ci.exceptions import PayloadTooLarge

        try:
            answer = self.client.create_events_batch([item for _, item, _ in batch])
        except PayloadTooLarge as exc:
            if len(batch) == 1:
                said = f"{exc.status_code}: {exc.server_message}"
                self._refused(batch[0][0], said, int(exc.exit_code))
                return
            half = len(batch) // 2  # the server's body limit is lower: halve and go on
            self._send(batch[:half])
            self._send(batch[half:])
            return
        for (where, _, _), result in zip(batch, answer.results, strict=True):
            self._count(where, result)

    def _count(self, where: str, result: BatchItemResult) -> None:
        if result.outcome.value == "created":
            self.tally.created += 1
        elif result.outcome.value == "replayed":
            self.tally.replayed += 1
        else:
            said = result.error.message if result.error else "refused"
            self._refused(where, f"{result.status}: {said}", _exit_code_of(result))

    def _refused(self, where: str, said: str, code: int) -> None:
        tally = self.tally
        tally.refused += 1
        tally.refusal_code = tally.refusal_code or code
        if tally.refused <= SHOWN_REFUSALS:
            click.echo(f"tracker-ci: {where} refused ({said})", err=True)


def _exit_code_of(result: BatchItemResult) -> int:
    """The exit code the CLI gives this refusal alone (the one table: tracker_ci.exceptions)."""
    import httpx

    from tracker_ci.exceptions import error_from_response

    body = result.error.to_wire() if result.error else {}
    request = httpx.Request("POST", "http://target/api/v1alpha1/events/batch")
    answer = httpx.Response(result.status, json=body, request=request)
    return int(error_from_response(answer).exit_code)


# ------------------------------------------------------------------ resuming
@dataclass
class Position:
    """Where an import stands: the lines of a file sent, or the source's next page."""

    source: str
    line: int = 0
    page: int = 1
    cursor: str = ""
    done: bool = False


class StateFile:
    """``--resume FILE``: the position after the last batch the target answered."""

    def __init__(self, path: Path | None, source: str) -> None:
        self.path = path
        self.position = Position(source=source)
        if path is None or not path.exists():
            return
        from tracker_ci.exceptions import ConfigError

        try:
            saved = Position(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"--resume {path}: not a state file of tracker-ci ({exc})") from None
        if saved.source != source:
            raise ConfigError(
                f"--resume {path}: it records an import of {saved.source}, not {source}: "
                "give another state file"
            )
        self.position = saved

    def save(self, **changes: Any) -> None:
        """Move the position and write it (atomically: a kill never leaves half a file)."""
        for name, value in changes.items():
            setattr(self.position, name, value)
        if self.path is None:
            return
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(asdict(self.position)) + "\n", encoding="utf-8")
        partial.replace(self.path)


def _advance(state: StateFile, sender: Sender, **changes: Any) -> None:
    """Move the saved position, unless an event was refused: a re-run must send it again
    (the events accepted around it then replay instead of being written twice)."""
    if sender.tally.refused == 0:
        state.save(**changes)


def import_file(stream: IO[str], sender: Sender, state: StateFile, limit: int | None) -> None:
    """Send the events of a JSON-lines stream, skipping the lines a resumed import sent.

    A bad line stops the import once the lines before it are sent (and saved in the state
    file): fix it and run again.
    """
    from tracker_ci.exceptions import ConfigError

    skip = number = state.position.line
    for number, text in enumerate(stream, start=1):  # noqa: B007 - read after the loop
        if number <= skip:
            continue
        if limit is not None and sender.tally.read >= limit:
            sender.flush()
            _advance(state, sender, line=number - 1)
            return
        try:
            event = read_line(number, text)
        except ConfigError:
            sender.flush()
            _advance(state, sender, line=number - 1)
            raise
        if event is not None:
            sender.add(f"line {number}", as_item(event))
        if not sender.pending:  # just sent: every line so far is answered
            _advance(state, sender, line=number)
    sender.flush()
    _advance(state, sender, line=max(number, skip), done=True)


def source_pages(
    source: TrackerClient, position: Position, per_page: int
) -> Iterator[tuple[list[Event], Position, int]]:
    """Every event of the source, a page at a time, with the position after each page and
    the source's total: by ``nextCursor`` when the source gives one (our server), else by
    page number. Upstream ignores paging and answers everything at once: an answer holding
    its whole ``totalCount``, or the same page again, is the last."""
    cursor, page, previous = position.cursor, position.page, ""
    while True:
        answer = source.list_events_page(cursor=cursor, page=page, per_page=per_page)
        events, total = answer.events, answer.total_count
        first = ",".join(event.metadata.id for event in events[:3])
        if first and first == previous:  # the page before again: the source does not page
            yield [], Position(position.source, done=True), total
            return
        if answer.next_cursor:
            following = Position(position.source, cursor=answer.next_cursor)
        else:
            unpaged = source.server_is_bundled is False and len(events) >= total
            last = bool(cursor) or len(events) < per_page or unpaged
            following = Position(position.source, page=page + 1, done=last)
        yield events, following, total
        if following.done:
            return
        cursor, page, previous = following.cursor, following.page, first


def import_server(
    source: TrackerClient, sender: Sender, state: StateFile, limit: int | None
) -> None:
    """Copy every event of the source server, page by page, saving the position after each."""
    for events, following, total in source_pages(source, state.position, sender.batch_size):
        sender.total = total
        for event in events:
            if limit is not None and sender.tally.read >= limit:
                sender.flush()
                return  # this page is read again on resume: what was sent replays
            sender.add(f"event {event.metadata.id or '(no id)'}", as_item(event))
        sender.flush()
        _advance(state, sender, **{k: v for k, v in asdict(following).items() if k != "source"})


# ------------------------------------------------------------------ the command
@click.command(
    "import",
    short_help="Import events with their history: JSON lines, or another server's.",
    epilog="""\b
Examples:
  tracker-ci event import events.jsonl
  other-tool export | tracker-ci event import -
  tracker-ci event import --from https://old-tracker.example.com --resume copy.state
""",
)
@click.argument("file", type=click.File("r", encoding="utf-8"), required=False)
@click.option(
    "--from",
    "source_url",
    metavar="URL",
    help="Copy every event of this Tracker server (upstream's or tracker-ci's) instead.",
)
@click.option(
    "--from-token",
    envvar="TRACKER_FROM_TOKEN",
    help="Token for reading the --from server. [env: TRACKER_FROM_TOKEN]",
)
@click.option(
    "--resume",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file: where the import stands, written after every batch; an import "
    "interrupted goes on from there.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=MAX_BATCH,
    show_default=True,
    help="Events per request.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Stop after this many events (a partial copy)."
)
@pass_state
def import_events(
    state: AppState,
    file: IO[str] | None,
    source_url: str | None,
    from_token: str | None,
    state_path: Path | None,
    batch_size: int,
    limit: int | None,
) -> None:
    """Import events with their real dates into the server (--url): from FILE of JSON
    lines (one event per line, as GET /event/{id} answers it inside "event"; - for
    stdin), or copied from another server (--from URL).

    Each event keeps its createdAt, duration, changelog and id; it takes no lock and
    notifies nobody. A re-run, or --resume after an interruption, replays what was sent
    before instead of writing it twice. Progress goes to stderr; the summary (created,
    replayed, refused) to stdout. Needs an admin token when the server has auth on.
    Exit 0 when nothing was refused; otherwise the code of the first refusal (2: bad
    event, 5: token); 4 when a server cannot be reached.
    """
    if (file is None) == (source_url is None):
        raise click.UsageError("give FILE (or - for stdin) or --from URL, not both")
    where = source_url.rstrip("/") if source_url else _file_name(file)
    resume = StateFile(state_path, where)
    tally = Tally()
    if resume.position.done:
        click.echo(f"tracker-ci: {where} was imported completely ({state_path})", err=True)
    else:
        _run(state, file, source_url, from_token, resume, tally, batch_size, limit)
    _finish(state, tally, resume.position.done)


def _file_name(file: IO[str] | None) -> str:
    name = getattr(file, "name", "-")
    return "-" if name in ("<stdin>", "-") else str(Path(name).resolve())


def _run(
    state: AppState,
    file: IO[str] | None,
    source_url: str | None,
    from_token: str | None,
    resume: StateFile,
    tally: Tally,
    batch_size: int,
    limit: int | None,
) -> None:
    from tracker_ci.exceptions import ServerUnreachable, TrackerError

    with state.client() as target:
        sender = Sender(target, tally, batch_size=batch_size)
        sender.on_sent = lambda: click.echo(f"tracker-ci: imported {sender.progress()}", err=True)
        try:
            if file is not None:
                import_file(file, sender, resume, limit)
            else:
                assert source_url is not None
                with _source_client(state, source_url, from_token) as source:
                    try:
                        import_server(source, sender, resume, limit)
                    except ServerUnreachable as error:
                        raise _source_down(error, source) from None
        except TrackerError:
            click.echo(f"tracker-ci: stopped after {tally.line()}", err=True)
            if resume.path is not None:
                click.echo(f"tracker-ci: run again with --resume {resume.path} to go on", err=True)
            raise


def _source_down(error: Any, source: TrackerClient) -> Any:
    """The source (--from) unreachable: say so, not "check TRACKER_URL" (the target's)."""
    from tracker_ci.exceptions import ServerUnreachable

    if error.url and not error.url.startswith(source.base_url):
        return error  # the target went away
    cause = str(error).split(". Check ", 1)[0]
    return ServerUnreachable(
        f"{cause} -- that is the source server given with --from: check --from (its "
        "address) and that it runs; the target (TRACKER_URL) is not the one that failed",
        url=error.url,
    )


def _source_client(state: AppState, url: str, token: str | None) -> TrackerClient:
    from tracker_ci.client import TrackerClient

    config = state.config
    return TrackerClient(
        base_url=url, token=token, timeout=config["timeout"], retries=config["retries"]
    )


def _finish(state: AppState, tally: Tally, complete: bool) -> None:
    if state.json:
        from tracker_ci.output import emit_json

        emit_json({**asdict(tally), "complete": complete})
    else:
        click.echo(f"imported {tally.line()}")
    if tally.refused:
        click.echo(f"error: {tally.refused} event(s) refused (see above)", err=True)
        raise click.exceptions.Exit(tally.refusal_code or 1)
