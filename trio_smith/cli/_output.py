"""What every trio-smith command does with its output."""

from __future__ import annotations

import os
from typing import TextIO


def silence(out: TextIO) -> None:
    """Send ``out`` (a closed pipe) to the null device, so that nothing more complains.

    What the Python docs advise for SIGPIPE: the interpreter's last flush at
    exit would raise again. Only for a stream with a file descriptor.
    """
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
