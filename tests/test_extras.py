"""The optional extras: each names itself when its dependency is missing, and
``import trio_smith`` (with its always-present modules) never imports any of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Each optional module, the dependency it needs, and what it says without it.
EXTRAS = [
    (
        "trio_smith.prometheus",
        "prometheus_client",
        "trio_smith.prometheus needs prometheus_client: install trio-smith[prometheus]",
    ),
    (
        "trio_smith.otel",
        "opentelemetry",
        "trio_smith.otel needs the OpenTelemetry API: pip install 'trio-smith[otel]'",
    ),
    (
        "trio_smith.observer",
        "h11",
        "trio_smith.observer needs h11: pip install 'trio-smith[observer]'",
    ),
]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(("module", "dependency", "message"), EXTRAS)
def test_without_its_dependency_an_extra_names_itself(
    module: str, dependency: str, message: str
) -> None:
    result = run(
        "import sys\n"
        f"sys.modules[{dependency!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == message + "\n"


def test_import_trio_smith_never_imports_an_extra() -> None:
    modules = {module for module, _, _ in EXTRAS} | {"trio_smith._otel", "trio_smith._observer"}
    dependencies = {dependency for _, dependency, _ in EXTRAS}
    result = run(
        "import sys, trio_smith, trio_smith.events, trio_smith.resilience, trio_smith.routing\n"
        "import trio_smith.telemetry\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(dependencies)!r} or m in {sorted(modules)!r}))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
