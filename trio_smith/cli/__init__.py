"""The ``trio-smith`` command: ``trio-smith demo`` and ``trio-smith events``.

Run ``trio-smith --help`` (or ``python -m trio_smith --help``). The reference
is docs/cli.md.
"""

from ._main import main as main

__all__ = ["main"]
