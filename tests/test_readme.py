"""The README's first example is a real supervision tree that runs as shown."""

from __future__ import annotations

import pathlib
import re

import pytest
import trio
import trio.testing

README = pathlib.Path(__file__).parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    text = README.read_text()
    section = text[text.index("## A first example") :]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def test_the_first_example_prints_what_the_readme_shows(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code = _blocks("python")[0]
    assert code.rstrip().endswith("trio.run(main)")
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code.rstrip().removesuffix("trio.run(main)"), str(README), "exec"), namespace)
    # Virtual time: the example's sleeps take no real time here.
    trio.run(namespace["main"], clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]
    assert capsys.readouterr().out == _blocks("text")[0]
    [crash] = caplog.records
    assert crash.getMessage() == "child 'worker' of supervisor 'supervisor' failed"
