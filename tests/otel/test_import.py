"""The otel extra is optional, never imported by trio_smith, and needs the API only."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_without_the_api_the_import_names_the_extra() -> None:
    result = run(
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "try:\n"
        "    import trio_smith.otel\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "trio_smith.otel needs the OpenTelemetry API: pip install 'trio-smith[otel]'\n"
    )


def test_import_trio_smith_never_imports_otel() -> None:
    result = run(
        "import sys, trio_smith, trio_smith.events, trio_smith.routing, trio_smith.telemetry\n"
        "print(sorted(m for m in sys.modules if 'otel' in m or 'opentelemetry' in m))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_the_module_works_without_the_sdk() -> None:
    # The API alone (no SDK installed): every call is a no-op, nothing fails.
    result = run(
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None\n"
        "from trio_smith import otel, telemetry\n"
        "i = otel.instrument(child_spans=True)\n"
        "meta = {'supervisor': 'root', 'child_id': 'w', 'incarnation': 1}\n"
        "telemetry.execute(('trio_smith', 'child', 'started'), {}, meta)\n"
        "telemetry.execute(('trio_smith', 'child', 'failed'), {}, meta)\n"
        "with telemetry.span(('trio_smith', 'router', 'request'), {'task_id': 1}):\n"
        "    pass\n"
        "print(telemetry.handlers()[0][0])\n"
        "i.uninstrument()\n"
        "print([m for m, v in sys.modules.items() if m.startswith('opentelemetry.sdk') and v])\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trio_smith.otel\n[]\n"
