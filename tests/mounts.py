"""Small file systems of the tests' own: a disk that fills up, a read-only view.

They need ``mount`` (root, as in CI); elsewhere the tests that use them skip,
saying why, except under ``CI``, where they fail.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest

__all__ = ["read_only_copy", "small_disk"]


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot mount file systems here ({exc}); CI can")


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 2 MiB tmpfs of its own (a disk that fills up)."""
    where = tmp_path / "small"
    where.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def read_only_copy(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, pathlib.Path]]:
    """A directory and a read-only view of it (a read-only bind mount)."""
    source = tmp_path / "rw"
    view = tmp_path / "ro"
    source.mkdir()
    view.mkdir()
    _mount("--bind", str(source), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield source, view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)
