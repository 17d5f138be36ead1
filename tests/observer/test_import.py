"""The observer extra is optional and never imported by trio_smith."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_without_h11_the_import_names_the_extra() -> None:
    result = run(
        "import sys\n"
        "sys.modules['h11'] = None\n"
        "try:\n"
        "    import trio_smith.observer\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trio_smith.observer needs h11: pip install 'trio-smith[observer]'\n"


def test_import_trio_smith_never_imports_the_observer() -> None:
    result = run(
        "import sys, trio_smith, trio_smith.events, trio_smith.routing, trio_smith.prometheus\n"
        "print(sorted(m for m in sys.modules if 'observer' in m or m == 'h11'))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
