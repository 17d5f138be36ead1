"""``trio-smith events``: inspect an event store (list, query, follow, trace, stats) and prune it.

Every subcommand but ``prune`` opens the store read-only (an SQLite file, or
a PostgreSQL URL: ``_stores``), so it never writes to it (nor creates one),
and can run beside the processes that are appending to it. Filters become
one :class:`~trio_smith.events.EventFilter` and go to the store's ``read``,
so SQLite answers them from its indexes. docs/cli.md is the reference;
``_events_args`` parses the arguments and ``_events_render`` writes the
output: on a terminal, coloured (unless ``NO_COLOR`` is set) and fitted to
its width.

Exit statuses: 0 done (also after Ctrl-C or SIGTERM ends ``follow``, and
when the reader of the output goes away, as with ``| head``); 1 a store that
cannot be opened or read (any ``EventsError``: a bad file, a damaged event,
a store unavailable, a prune refused), or an unknown correlation for
``trace`` (one line on stderr, via ``CommandError``); 2 a bad argument
(argparse, one line), also one only the store can refuse: a category no
event has, a part of a correlation id that names no correlation or several
(``UsageError``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Final, final
from uuid import UUID

import trio

from ..events import (
    CATEGORIES,
    Event,
    EventFilter,
    EventsError,
    EventStore,
    PruneRefused,
    StoreOpenError,
    StoreUnavailable,
    dumps,
)
from ._errors import CommandError, UsageError
from ._events_args import (
    CorrelationRef,
    category,
    correlation_ref,
    event_type,
    moment,
    position,
    positive_int,
    source,
)
from ._events_render import (
    Layout,
    Tally,
    build_tree,
    event_line,
    header_line,
    stats_json,
    stats_lines,
    timestamp,
    tree_json,
    tree_lines,
)
from ._output import silence
from ._stores import DEFAULT_SCHEMA, DurableStore, is_database_url, make_store, shown

__all__ = ["configure", "run"]

#: ``list`` shows this many events unless ``--limit`` says otherwise.
DEFAULT_LIST_LIMIT: Final = 20
#: Events per read when a command walks the store.
PAGE: Final = 1000

Command = Callable[[argparse.Namespace], Awaitable[int]]


# ---------------------------------------------------------------- arguments


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the events command's subcommands and their arguments to ``parser``."""
    commands = parser.add_subparsers(
        dest="events_command", metavar="SUBCOMMAND", parser_class=type(parser)
    )
    commands.required = True

    listing = commands.add_parser(
        "list",
        help="the last matching events (default 20), oldest first",
        description="Print the last N events that match the filters (default 20), in "
        "position order, oldest first.",
    )
    _add_store(listing)
    _add_filters(listing)
    listing.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"how many of the last matching events to print (default {DEFAULT_LIST_LIMIT})",
    )
    _add_output(listing)

    query = commands.add_parser(
        "query",
        help="every matching event, from the first",
        description="Print every event that matches the filters, in position order, "
        "from the first.",
    )
    _add_store(query)
    _add_filters(query)
    query.add_argument(
        "--limit", type=positive_int, metavar="N", help="stop after N events (default: no limit)"
    )
    _add_output(query)

    follow = commands.add_parser(
        "follow",
        help="print matching events as they are appended, until Ctrl-C",
        description="Print matching events as another process appends them, from the "
        "current head on (or replay from --from-position first), until Ctrl-C or "
        "SIGTERM; with --to-position, stop after that position.",
    )
    _add_store(follow)
    _add_filters(follow)
    _add_output(follow)
    follow.add_argument(
        "--wait",
        action="store_true",
        help="if there is no store yet, wait for one to appear (then print its events "
        "from the first) instead of failing",
    )

    trace = commands.add_parser(
        "trace",
        help="the causal tree of one correlation",
        description="Draw the events of one correlation as a tree: each event under the "
        "event that caused it.",
    )
    _add_store(trace)
    trace.add_argument(
        "correlation",
        type=correlation_ref,
        metavar="CORRELATION_ID",
        help="a correlation id, or at least 4 hex digits from its start or its end "
        "(as list shows them) that no other correlation in the store has",
    )
    _add_json(trace, "print the tree as one JSON document")
    _add_full(trace)

    stats = commands.add_parser(
        "stats",
        help="counts: events, types, categories, sources, correlations",
        description="Summarise a store: its size, its time span and what its events are.",
    )
    _add_store(stats)
    _add_json(stats, "print the statistics as one JSON object")

    prune = commands.add_parser(
        "prune",
        help="remove the oldest events, those before a time",
        description="Remove the events at the start of the log that are older than TIME "
        "(the last event always stays; positions never change). Refused if a durable "
        "subscription has not handled them yet, unless --force.",
    )
    _add_store(prune)
    prune.add_argument(
        "--before",
        type=moment,
        required=True,
        metavar="TIME",
        help="remove the events before TIME: ISO 8601 (UTC if no zone is given) or a "
        "duration ago, e.g. 7d, 12h",
    )
    prune.add_argument(
        "--force",
        action="store_true",
        help="remove them even if a durable subscription has not handled them yet",
    )


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "db",
        metavar="DB",
        help="the event store: an SQLite file, or a postgresql:// URL",
    )
    parser.add_argument(
        "--schema",
        default=DEFAULT_SCHEMA,
        metavar="NAME",
        help=f"the PostgreSQL schema of the store (a URL only; default {DEFAULT_SCHEMA})",
    )


def _add_json(
    parser: argparse.ArgumentParser,
    text: str = "print JSON Lines: each event as trio_smith.events.dumps writes it",
) -> None:
    parser.add_argument("--json", action="store_true", help=text)


def _add_full(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full",
        action="store_true",
        help="print each payload whole, as indented JSON under its event, instead of cut "
        "to fit the line",
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    """The output options of ``list``, ``query`` and ``follow``."""
    _add_json(parser)
    _add_full(parser)
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        help="a header row over plain output (default: on a terminal only)",
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The filter options ``list``, ``query`` and ``follow`` share (each one narrows)."""
    group = parser.add_argument_group(
        "filters",
        "Options given several times take any of their values; different options "
        "must all match. --source and --source-prefix together take either.",
    )
    group.add_argument(
        "--type",
        dest="types",
        action="append",
        type=event_type,
        metavar="WIRE",
        help="events of this type, e.g. agent.failed",
    )
    group.add_argument(
        "--category",
        dest="categories",
        action="append",
        type=category,
        metavar="CAT",
        help="events of this category, e.g. supervision",
    )
    group.add_argument(
        "--source",
        dest="sources",
        action="append",
        type=source,
        metavar="SRC",
        help="events from exactly this source",
    )
    group.add_argument(
        "--source-prefix",
        dest="source_prefixes",
        action="append",
        type=source,
        metavar="PREFIX",
        help="events whose source starts with this, e.g. agents/",
    )
    group.add_argument(
        "--correlation",
        dest="correlations",
        action="append",
        type=correlation_ref,
        metavar="ID",
        help="events of this correlation: its id, or at least 4 hex digits from its start "
        "or its end (the 8 that list shows) that no other correlation in the store has",
    )
    group.add_argument(
        "--since",
        type=moment,
        metavar="TIME",
        help="events at or after TIME: ISO 8601 (UTC if no zone is given) or a "
        "duration ago, e.g. 30s, 5m, 2h, 1d",
    )
    group.add_argument("--until", type=moment, metavar="TIME", help="events before TIME")
    group.add_argument(
        "--from-position",
        type=position,
        metavar="N",
        help="events at position N or later",
    )
    group.add_argument(
        "--to-position", type=position, metavar="N", help="events at position N or earlier"
    )


def event_filter(args: argparse.Namespace, correlations: Sequence[UUID] | None) -> EventFilter:
    """The filter the options in ``args`` describe (positions are inclusive).

    Args:
        args: the parsed options.
        correlations: the correlation ids ``--correlation`` names, resolved
            against the store (``resolve_all``).
    """
    return EventFilter(
        types=args.types,
        categories=args.categories,
        sources=args.sources,
        source_prefixes=args.source_prefixes,
        correlation_ids=correlations,
        since=args.since,
        until=args.until,
        after_position=None if args.from_position is None else args.from_position - 1,
        until_position=args.to_position,
    )


# ---------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """Run an events subcommand; return the exit status.

    Raises:
        CommandError: a store that cannot be opened or read (the message is
            the ``EventsError``'s), or a correlation not in the store.
    """
    if not getattr(args, "wait", False):
        check_store_path(args.db)
    command = _COMMANDS[args.events_command]
    try:
        return trio.run(command, args)
    except (EventsError, BaseExceptionGroup) as exc:
        # The command's boundary: whatever the store raised on purpose (a
        # damaged event, a store unavailable) is the store's one-line
        # message. A nursery (the store's poller, follow's) wraps it, or the
        # command's own error, in a group.
        error = command_error(exc)
        if error is None:
            raise
        if isinstance(error, CommandError):
            raise error from None
        raise _fail(str(error)) from None
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence(sys.stdout)


def command_error(exc: BaseException) -> EventsError | CommandError | None:
    """The error that ``exc`` is, or the first of a group of nothing else.

    An ``EventsError`` or a ``CommandError``; None if ``exc`` is, or a group
    of it holds, anything else: that is a bug to show whole, not an error to
    put in one line.
    """
    if isinstance(exc, EventsError | CommandError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        errors, rest = exc.split((EventsError, CommandError))
        if errors is not None and rest is None:
            return command_error(errors.exceptions[0])
    return None


def _fail(message: str) -> CommandError:
    """The error that ends the command with ``message`` and exit status 1."""
    return CommandError(message)


def check_store_path(path: str) -> None:
    """Refuse a missing store file in the command's own words (the store says why others fail).

    Raises:
        CommandError: no such file.
    """
    if not is_database_url(path) and not os.path.exists(path):
        raise _fail(f"no such store file: {path!r}")


#: Seconds between two looks for a store that ``follow --wait`` waits for.
WAIT_POLL_FILE: Final = 0.1
WAIT_POLL_SERVER: Final = 1.0


@contextlib.asynccontextmanager
async def open_store(args: argparse.Namespace) -> AsyncIterator[EventStore]:
    """Open the store ``args.db`` names read-only, for the duration of the block.

    Raises:
        CommandError: a store that cannot be opened: a file that is not a
            store this version reads, a database that cannot be reached, a
            bad URL or schema, say (the message is the error's).
    """
    store, _ = await _open(args)
    try:
        yield store
    finally:
        await store.__aexit__(None, None, None)


async def _open(
    args: argparse.Namespace, *, read_only: bool = True, wait: bool = False
) -> tuple[DurableStore, bool]:
    """The store ``args.db`` names, opened; and whether there was none at first.

    Args:
        read_only: open it read-only (every command but ``prune``).
        wait: while there is no store there yet (no file, or a file or
            schema without one), look again every ``WAIT_POLL_FILE`` or
            ``WAIT_POLL_SERVER`` seconds instead of failing.

    Raises:
        CommandError: a store that cannot be opened (the message is the error's).
    """
    if args.schema != DEFAULT_SCHEMA and not is_database_url(args.db):
        raise _fail(f"--schema applies to a postgresql:// URL, not to the file {args.db!r}")
    poll = WAIT_POLL_SERVER if is_database_url(args.db) else WAIT_POLL_FILE
    missing = False
    while True:
        try:
            store = make_store(args.db, read_only=read_only, schema=args.schema)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        try:
            await store.__aenter__()
        except StoreOpenError as exc:
            if not (wait and exc.missing):
                raise _fail(str(exc)) from None
            missing = True
            await trio.sleep(poll)
            continue
        return store, missing


def terminal() -> tuple[int | None, bool]:
    """The width of the terminal stdout is, and whether to colour it.

    ``(None, False)`` when stdout is not a terminal. No colour when
    ``NO_COLOR`` is set (to anything but the empty string) or ``TERM`` is
    ``dumb``. The width is ``COLUMNS`` if set, else the terminal's.
    """
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        tty = False
    if not tty:
        return None, False
    color = not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    return shutil.get_terminal_size().columns, color


def layout(args: argparse.Namespace, head: int) -> Layout:
    """How plain lines are written for ``args`` on this output."""
    width, color = terminal()
    return Layout.for_head(head, width=width, color=color, full=args.full)


@final
class _Printer:
    """Writes events to stdout, plain (under a header row) or as JSON Lines.

    Notices a closed pipe: each method returns False once nobody reads.
    """

    __slots__ = ("_flush", "_header", "_json", "_layout")

    def __init__(self, args: argparse.Namespace, *, head: int, flush: bool = False) -> None:
        self._json: bool = args.json
        self._layout = layout(args, head)
        header: bool | None = args.header
        if header is None:
            header = self._layout.width is not None  # a terminal
        self._header = header and not args.json
        self._flush = flush

    def event(self, event: Event) -> bool:
        """Write one event (the header row first, before the first)."""
        if self._json:
            return write(dumps(event), self._flush)
        if self._header:
            self._header = False
            if not write(header_line(self._layout), self._flush):
                return False
        return write_lines(event_line(event, self._layout), self._flush)


def write_lines(lines: Iterable[str], flush: bool = False) -> bool:
    """Write lines to stdout; False (and stop) once the reader has gone."""
    return all(write(line, flush) for line in lines)


def write(line: str, flush: bool = False) -> bool:
    """Write one line to stdout.

    Returns:
        False if the reader has gone (a closed pipe: ``| head``); then
        stdout is sent to the null device, so that nothing more complains.
    """
    try:
        sys.stdout.write(line + "\n")
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        silence(sys.stdout)
        return False
    return True


# ---------------------------------------------------------------- list, query


async def _wanted(
    store: EventStore, args: argparse.Namespace, *, categories: bool = True
) -> EventFilter:
    """The filter of the options, once the store has checked what only it can.

    Args:
        categories: check ``--category`` against the store.

    Raises:
        UsageError: a ``--category`` no event has (reserved ones excepted), or a
            part of a correlation id that names no correlation, or several.
    """
    refs: list[CorrelationRef] | None = args.correlations
    context = "argument --correlation: "
    correlations = None if refs is None else await resolve_all(store, refs, context)
    if categories:
        await check_categories(store, args.categories)
    return event_filter(args, correlations)


async def list_events(args: argparse.Namespace) -> int:
    """``list``: the last ``--limit`` matching events, oldest first."""
    async with open_store(args) as store:
        wanted = await _wanted(store, args)
        head = await store.head()
        printer = _Printer(args, head=head)
        # Up to the head read above: the printer's widths are fitted to it.
        wanted &= EventFilter(until_position=head)
        for event in await store.read(wanted, limit=args.limit, last=True):
            if not printer.event(event):
                break
    return 0


async def query_events(args: argparse.Namespace) -> int:
    """``query``: every matching event up to the head, from the first (or ``--limit``)."""
    async with open_store(args) as store:
        head = await store.head()
        wanted = await _wanted(store, args) & EventFilter(until_position=head)
        printer = _Printer(args, head=head)
        left: int | None = args.limit
        after = 0
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            page = await store.read(wanted, after=after, limit=size)
            for event in page:
                if not printer.event(event):
                    return 0
            if len(page) < size:
                break
            last = page[-1].position
            assert last is not None
            after = last
            if left is not None:
                left -= len(page)
    return 0


# ---------------------------------------------------------------- follow


async def follow_events(args: argparse.Namespace) -> int:
    """``follow``: print matching events as they are appended, until a signal.

    SIGINT (Ctrl-C) and SIGTERM end it with status 0, as does the end of
    ``--to-position`` or a closed pipe.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
            store, appeared = await _open(args, wait=args.wait)
            try:
                # A store that did not exist when follow started: every event
                # of it is new, from the first; its categories are not checked
                # (a new store has no events to check them against).
                wanted = await _wanted(store, args, categories=not appeared)
                if appeared:
                    wanted &= EventFilter(after_position=0)
                nursery.start_soon(_end_if_stuck, store)
                await _follow(store, wanted, args)
            finally:
                nursery.cancel_scope.cancel()
                await store.__aexit__(None, None, None)
    return 0


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()


#: Seconds ``follow`` goes on while the store cannot read new events.
STUCK: Final = 10.0


async def _end_if_stuck(store: EventStore) -> None:
    """End ``follow`` (status 1) once the store has not been able to read on for ``STUCK`` s.

    A damaged event, or a server gone for good, would otherwise leave it
    waiting for ever for events it can never deliver.

    Raises:
        StoreUnavailable: with the store's own words for why it cannot read on
            (an EventsError: ``run`` prints it as one line, status 1).
    """
    since: float | None = None
    while True:
        await trio.sleep(1)
        error = store.statistics().follow_error
        if error is None:
            since = None
        elif since is None:
            since = trio.current_time()
        elif trio.current_time() - since >= STUCK:
            raise StoreUnavailable(
                store.name, f"no new event could be read for {STUCK:g} s: {error}"
            )


async def _follow(store: EventStore, wanted: EventFilter, args: argparse.Namespace) -> None:
    """Replay from ``--from-position`` if given, then print what the store announces.

    No gap and no repeat: the listener is added before the head is read, so
    every event after that head reaches the listener, and those at or
    before it (which the listener may also see) are skipped there.
    """
    batches, receive = trio.open_memory_channel[Sequence[Event]](math.inf)
    remove = store.add_listener(batches.send_nowait)
    try:
        head = await store.head()
        printer = _Printer(args, head=head, flush=True)
        end = wanted.until_position
        if wanted.after_position is not None:
            async for event in store.scan(wanted & EventFilter(until_position=head)):
                if not printer.event(event):
                    return
        if end is not None and end <= head:
            return
        async for batch in receive:
            for event in batch:
                at = event.position
                assert at is not None
                if at <= head:
                    continue
                if wanted.matches(event) and not printer.event(event):
                    return
                if end is not None and at >= end:
                    return
    finally:
        remove()


# ---------------------------------------------------------------- trace


async def trace_correlation(args: argparse.Namespace) -> int:
    """``trace``: the causal tree of one correlation."""
    ref: CorrelationRef = args.correlation
    async with open_store(args) as store:
        [correlation] = await resolve_all(store, [ref])
        events = await store.get_by_correlation(correlation)
    if not events:
        raise _fail(f"no events with correlation id {correlation}")
    roots = build_tree(events)
    if args.json:
        write(tree_json(correlation, len(events), roots))
        return 0
    count = f"{len(events)} event{'' if len(events) == 1 else 's'}"
    if write(f"correlation {correlation}: {count}"):
        write_lines(tree_lines(roots, layout(args, 0)))
    return 0


async def resolve_all(
    store: EventStore, refs: Sequence[CorrelationRef], context: str = ""
) -> list[UUID]:
    """The correlation ids in the store that ``refs`` name, in order.

    A whole id is taken as it is. Hex digits are matched against the start
    and the end of every correlation id in the store, in one pass over it
    for all of them.

    Args:
        context: what the message begins with: ``"argument --correlation: "``
            for the option (a usage error), ``""`` for ``trace``.

    Raises:
        CommandError: (``UsageError`` with a context) no correlation id
            matches some digits, or several do.
    """
    found: dict[CorrelationRef, set[UUID]] = {ref: set() for ref in refs if ref.uuid is None}
    if found:
        async for event in store.scan():
            correlation = event.correlation_id
            if correlation is not None:
                for ref, matches in found.items():
                    if ref.matches(correlation):
                        matches.add(correlation)
    error = UsageError if context else CommandError
    resolved = []
    for ref in refs:
        if ref.uuid is not None:
            resolved.append(ref.uuid)
            continue
        matches = found[ref]
        if not matches:
            raise error(f"{context}no correlation id in the store starts or ends with {ref.text!r}")
        if len(matches) > 1:
            some = ", ".join(str(c) for c in sorted(matches)[:3])
            more = ", ..." if len(matches) > 3 else ""
            raise error(
                f"{context}{ref.text!r} is ambiguous: {len(matches)} correlation ids start "
                f"or end with it ({some}{more})"
            )
        resolved.append(next(iter(matches)))
    return resolved


async def check_categories(store: EventStore, categories: Sequence[str] | None) -> None:
    """Refuse a category no event in the store has: a typo would match nothing, silently.

    The reserved categories (``system``, ``agent``, ``tool``,
    ``supervision``) are always accepted. Finding a category reads up to its
    first event; refusing one reads the whole store (to list what it holds).

    Raises:
        UsageError: naming the category and listing the store's.
    """
    for name in categories or ():
        if name in CATEGORIES or await store.read(EventFilter(categories=name), limit=1):
            continue
        held = sorted({event.type.category async for event in store.scan()})
        which = f"its categories are {', '.join(held)}" if held else "it holds no events"
        raise UsageError(
            f"argument --category: no event in the store has category {name!r}; {which}"
        )


# ---------------------------------------------------------------- stats


async def store_stats(args: argparse.Namespace) -> int:
    """``stats``: counts of the store's events, its time span and its size."""
    async with open_store(args) as store:
        head = await store.head()
        tally = Tally()
        async for event in store.scan(EventFilter(until_position=head)):
            tally.add(event)
        stats = tally.finish(
            path=shown(store, args.db),
            head=head,
            file_size=None if is_database_url(args.db) else await _size(args.db),
            wal_size=None if is_database_url(args.db) else await _size(f"{args.db}-wal"),
        )
    if args.json:
        write(stats_json(stats))
        return 0
    for line in stats_lines(stats):
        if not write(line):
            break
    return 0


async def _size(path: str) -> int:
    """The size of a file in bytes; 0 if there is none."""
    try:
        return (await trio.Path(path).stat()).st_size
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------- prune


async def prune_events(args: argparse.Namespace) -> int:
    """``prune``: remove the events at the start of the log that are older than ``--before``.

    The store is first opened read-only, so that a file or schema that holds
    no store is refused (as every command refuses it), never created.

    Raises:
        CommandError: the store cannot be opened or written, or a durable
            subscription has not handled the events (without ``--force``).
    """
    async with open_store(args):
        pass
    store, _ = await _open(args, read_only=False)
    try:
        before = await _first(store)
        try:
            removed = await store.prune(args.before, force=args.force)
        except PruneRefused as exc:
            raise _fail(f"{exc}; --force prunes past it") from None
        after = await _first(store)
    finally:
        await store.__aexit__(None, None, None)
    name = shown(store, args.db)
    count = f"{removed} event{'' if removed == 1 else 's'}"
    if after is None:
        write(f"pruned {count} from {name}; it holds no events")
        return 0
    starts = f"the log starts at position {after.position} ({timestamp(after.timestamp)})"
    if removed and before is not None and before.position is not None:
        write(
            f"pruned {count} from {name} (positions {before.position} to "
            f"{before.position + removed - 1}); {starts}"
        )
    else:
        write(f"pruned {count} from {name}; {starts}")
    return 0


async def _first(store: EventStore) -> Event | None:
    """The store's first event, or None."""
    first = await store.read(limit=1)
    return first[0] if first else None


_COMMANDS: Final[dict[str, Command]] = {
    "list": list_events,
    "query": query_events,
    "follow": follow_events,
    "trace": trace_correlation,
    "stats": store_stats,
    "prune": prune_events,
}
