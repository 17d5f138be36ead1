"""``trio-smith demo`` (being written)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments."""


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    raise NotImplementedError("trio-smith demo is being written")
