"""docs/events.md's first example runs and prints what its comment says."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).parent.parent.parent / "docs" / "events.md"


def test_the_first_example_prints_what_the_page_says(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)[0]
    expected = re.search(r"# prints: (.*)$", code, re.MULTILINE)
    assert expected is not None
    exec(compile(code, str(DOC), "exec"), {"__name__": "events_doc_example"})
    assert capsys.readouterr().out == expected.group(1) + "\n"
