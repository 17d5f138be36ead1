"""The error every ``trio-smith`` subcommand raises for a user's mistake.

It has its own module because the subcommands raise it and ``_main``, which
imports the subcommands, catches it.
"""

from __future__ import annotations


class CommandError(Exception):
    """A user error found after parsing (a bad file, say): one line, then exit 1."""
