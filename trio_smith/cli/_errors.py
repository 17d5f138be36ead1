"""The errors every ``trio-smith`` subcommand raises for a user's mistake.

They have their own module because the subcommands raise them and ``_main``,
which imports the subcommands, catches them.
"""

from __future__ import annotations


class CommandError(Exception):
    """A user error found after parsing (a bad file, say): one line, then exit 1."""


class UsageError(CommandError):
    """A bad argument that only the store can tell (an unknown category): exit 2.

    Printed as argparse prints its own, after the subcommand's name:
    ``trio-smith events query: error: argument --category: ...``.
    """
