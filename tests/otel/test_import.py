"""The otel extra needs the OpenTelemetry API only (its import guard: tests/test_extras.py)."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


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
