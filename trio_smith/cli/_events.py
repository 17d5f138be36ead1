"""``trio-smith events`` (being written)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the events command's arguments."""


def run(args: argparse.Namespace) -> int:
    """Run an events subcommand; return the exit status."""
    raise NotImplementedError("trio-smith events is being written")
