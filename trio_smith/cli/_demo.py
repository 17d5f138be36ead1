"""``trio-smith demo``: a supervised multi-agent system under chaos, shown live.

A router hub with researcher, coder and analyst workers under a supervision
tree, a flaky search tool behind a circuit breaker, workers that crash at
random, one that hangs and is caught by the phi-accrual detector, and a
group that gives up and is restarted whole by its parent. On a terminal it
draws the tree live (rich); otherwise, or with ``--plain``, it prints one
line per notable event. Every event goes to a SQLite store; the summary
says how to inspect it with ``trio-smith events``.

The decisions live in ``_demo_plan`` (timeline, seeded chaos), the system
and ``run_demo`` in ``_demo_system``, what is shown in ``_demo_view``;
this module parses the arguments, checks the store path and handles
Ctrl-C. docs/cli.md is the reference.

Exit statuses: 0 when the run ended (its duration passed, or Ctrl-C /
SIGTERM stopped it: the summary is printed either way); 1 for a store file
it cannot use (one line on stderr, the file untouched); 2 for a bad
argument (argparse, one line).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import random
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, TextIO

import trio

from ..events import StoreOpenError
from ._demo_plan import DEFAULT_CHAOS, DEFAULT_DB, DEFAULT_DURATION, DemoConfig
from ._errors import CommandError, UsageError

if TYPE_CHECKING:
    from ._demo_view import Reporter, Summary

# The demo's system and views (rich, routing, resilience) are imported when
# the demo runs, not when the trio-smith command starts: `trio-smith events`
# never needs them.

__all__ = ["chaos_rate", "configure", "duration", "make_reporter", "run", "seed", "store_path"]


def duration(text: str) -> float:
    """Seconds, a finite number > 0 (``--duration``).

    Raises:
        argparse.ArgumentTypeError: not a number, or not > 0.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def chaos_rate(text: str) -> float:
    """A probability from 0 to 1 (``--chaos``).

    Raises:
        argparse.ArgumentTypeError: not a number in [0, 1].
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text!r}")
    return value


def seed(text: str) -> int:
    """An integer (``--seed``).

    Raises:
        argparse.ArgumentTypeError: not an integer.
    """
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def store_path(text: str) -> str:
    """A file path or a ``postgresql://`` URL, not empty (``--db``).

    Raises:
        argparse.ArgumentTypeError: an empty string.
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a file path or a postgresql:// URL, got ''")
    return text


def observe_address(text: str) -> tuple[str, int]:
    """``--observe``'s ``[HOST:]PORT``: the host (127.0.0.1 if none) and the port."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"expected [HOST:]PORT, a port from 0 to 65535, got {text!r}"
        )
    host = host.removeprefix("[").removesuffix("]")  # [::1]:8790
    return host or "127.0.0.1", int(port)


def _check_observe(args: argparse.Namespace) -> tuple[str, int, str | None] | None:
    """``--observe`` as the demo's config takes it, checked by the Observer itself.

    Raises:
        UsageError: a non-loopback host without ``--observe-token``, or a bad token.
        CommandError: h11 is not installed.
    """
    if args.observe is None:
        if args.observe_token is not None:
            raise UsageError("argument --observe-token: applies with --observe")
        return None
    try:
        from .._observer import check_address
    except ImportError as exc:
        raise CommandError(f"--observe: {exc}") from None

    host, port = args.observe
    try:
        check_address(host, port, args.observe_token)  # the observer's own checks
    except ValueError as exc:
        raise UsageError(f"argument --observe: {exc}") from None
    return host, port, args.observe_token


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments to ``parser``."""
    parser.add_argument(
        "--duration",
        type=duration,
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"stop after this many seconds (default {DEFAULT_DURATION:g}); Ctrl-C stops "
        "it earlier, cleanly",
    )
    parser.add_argument(
        "--chaos",
        type=chaos_rate,
        default=DEFAULT_CHAOS,
        metavar="RATE",
        help=f"probability that a task crashes its worker, 0 to 1 (default {DEFAULT_CHAOS:g}); "
        "the scripted outage, hang and crash burst happen whatever it is",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        metavar="N",
        help="seed of every random decision, to repeat a run (default: a new one, printed)",
    )
    parser.add_argument(
        "--db",
        type=store_path,
        default=DEFAULT_DB,
        metavar="PATH|URL",
        help=f"the event store: an SQLite file (default ./{DEFAULT_DB}) or a postgresql:// "
        "URL (schema trio_smith); an existing demo store is appended to",
    )
    parser.add_argument(
        "--observe",
        type=observe_address,
        metavar="[HOST:]PORT",
        help="serve the tree with an Observer (a browser page and /api/tree, for "
        "trio-smith observe) at this port (0: a free one), on 127.0.0.1 unless HOST is "
        "given, which then needs --observe-token; the URL is printed",
    )
    parser.add_argument(
        "--observe-token",
        metavar="TOKEN",
        help="the token every request to --observe's observer must carry",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="plain lines, one per notable event, even on a terminal (the default when "
        "the output is not a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status.

    Raises:
        CommandError: the store file cannot be used (the message says why).
    """
    given = args.seed is not None
    # A short seed, easy to type back in.
    chosen = args.seed if given else random.SystemRandom().randrange(1_000_000)
    observe = _check_observe(args)
    config = DemoConfig(
        seed=chosen, duration=args.duration, chaos=args.chaos, db=args.db, observe=observe
    )
    reporter = make_reporter(sys.stdout, plain=args.plain)
    with _quiet_library_logs():
        summary = trio.run(_demo_main, config, reporter, given)
    if isinstance(summary, str):
        raise CommandError(summary)
    from ._demo_view import summary_lines

    reporter.summary(summary_lines(summary, program=_program()))
    return 0


def _program() -> str:
    """The command that runs trio-smith again from here, for the summary.

    ``make demo`` runs ``.venv/bin/trio-smith``, which is not on PATH: the
    summary then names it as invoked, so its commands work when pasted.
    """
    invoked = sys.argv[0]
    if os.path.basename(invoked) == "trio-smith" and os.sep in invoked:
        found = shutil.which("trio-smith")
        if found is None or os.path.realpath(found) != os.path.realpath(invoked):
            return invoked
    return "trio-smith"


def make_reporter(out: TextIO, *, plain: bool) -> Reporter:
    """The live tree on a terminal; plain lines elsewhere, or when ``plain``."""
    from rich.console import Console

    from ._demo_view import LiveReporter, PlainReporter

    if plain or not out.isatty():
        return PlainReporter(out)
    return LiveReporter(Console(file=out, highlight=False))


@contextlib.contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """Keep trio_smith's own log records (crash tracebacks) off the terminal.

    Supervisors log every crash at ERROR with its traceback; with no
    logging configured, Python's last-resort handler would print them all
    over the demo's output. The demo shows those crashes itself, as events.
    """
    logger = logging.getLogger("trio_smith")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    propagate = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)


async def _demo_main(config: DemoConfig, reporter: Reporter, seed_given: bool) -> Summary | str:
    """Run the demo in trio, stopping it cleanly on SIGINT or SIGTERM.

    Returns:
        The summary, or the message of a store file it cannot use (returned,
        not raised: out of the signal watcher's nursery it would come
        wrapped in an ExceptionGroup).
    """
    from ._demo_system import run_demo
    from ._demo_view import PlainReporter

    stop = trio.Event()
    if isinstance(reporter, PlainReporter):
        reporter.on_gone = stop.set  # nobody reads the lines any more: stop
    repeat = "" if seed_given else f" (a new one: --seed {config.seed} repeats this run)"
    banner = [
        f"trio-smith demo: {config.duration:g} s, chaos {config.chaos:g}, seed {config.seed}"
        f"{repeat}"
    ]
    async with _stop_on_signals(stop):
        try:
            return await run_demo(config, reporter=reporter, stop=stop, banner=banner)
        except (StoreOpenError, ValueError) as exc:
            return str(exc)


@contextlib.asynccontextmanager
async def _stop_on_signals(stop: trio.Event) -> AsyncIterator[None]:
    """Within the block, Ctrl-C (and SIGTERM) set ``stop`` instead of raising.

    The demo then stops its tree in order, prints its summary and exits 0:
    no KeyboardInterrupt traceback, and the store is closed properly.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for _ in signals:
                    stop.set()

            nursery.start_soon(watch)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
