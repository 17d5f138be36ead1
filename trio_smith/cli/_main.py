"""The ``trio-smith`` entry point: one argparse parser, a subcommand per module.

Each subcommand module offers ``configure(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit status). Errors a user can cause (bad
arguments, bad files) end in one line on stderr and a non-zero status;
nothing is modified.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from . import _demo, _events, _observe
from ._errors import CommandError, UsageError

#: Exit status for a usage error (argparse's own) and for a runtime error.
EXIT_USAGE = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``trio-smith events: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(
        prog="trio-smith",
        description="Supervision trees, events and resilience for Trio: a live demo "
        "and an inspector for event stores.",
    )
    parser.add_argument("--version", action="version", version=f"trio-smith {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _demo.configure(
        commands.add_parser(
            "demo",
            help="run a supervised multi-agent system under chaos, live",
            description="Run a supervised multi-agent system under injected chaos, shown "
            "live; its events go to a SQLite store.",
        )
    )
    _events.configure(
        commands.add_parser(
            "events",
            help="inspect an event store: list, query, follow, trace, stats; prune it",
            description="Inspect a trio_smith event store (a file or a PostgreSQL URL), "
            "or prune its oldest events.",
        )
    )
    _observe.configure(
        commands.add_parser(
            "observe",
            help="draw a supervision tree live: from an observer's URL, or rebuilt from a store",
            description="Draw a supervision tree in the terminal: live from an Observer "
            "(http://HOST:PORT), or rebuilt from an event store's supervision events.",
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trio-smith`` with ``argv`` (default: the process's arguments).

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit status: 0 on success, 1 when the command failed (a bad file,
        say), 2 for a usage error, 130 after Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    run = {"demo": _demo.run, "events": _events.run, "observe": _observe.run}[args.command]
    try:
        return run(args)
    except UsageError as exc:
        words = [parser.prog, args.command, getattr(args, "events_command", None)]
        print(f"{' '.join(w for w in words if w)}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"trio-smith {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
