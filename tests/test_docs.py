"""The documentation's examples run as shown, and the API reference is complete."""

from __future__ import annotations

import importlib
import itertools
import pathlib
import re

import pytest
import trio
import trio.testing

import trio_smith.events

DOCS = pathlib.Path(__file__).parent.parent / "docs"

#: The public modules whose every name docs/api.md must document.
PUBLIC_MODULES = [
    "trio_smith",
    "trio_smith.events",
    "trio_smith.resilience",
    "trio_smith.routing",
    "trio_smith.notify",
    "trio_smith.telemetry",
    "trio_smith.otel",
    "trio_smith.prometheus",
    "trio_smith.observer",
]


#: The last line of a runnable example: ``trio.run(main)``, maybe with a clock.
_RUN_MAIN = re.compile(r"\ntrio\.run\(main(, clock=[^\n]*)?\)$")


def _examples(page: str) -> list[tuple[str, str]]:
    """Each ```python block that ends in ``trio.run(main)``, with the ```text block after it."""
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```(python|text)\n(.*?)```", text, re.DOTALL)
    return [
        (code, output)
        for (language, code), (next_language, output) in itertools.pairwise(blocks)
        if language == "python" and next_language == "text" and _RUN_MAIN.search(code.rstrip())
    ]


def _run(code: str, filename: str) -> None:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    body = _RUN_MAIN.sub("\n", code.rstrip())
    exec(compile(body, filename, "exec"), namespace)
    # Virtual time: the example's sleeps take no real time here.
    trio.run(namespace["main"], clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_getting_started_has_one_runnable_example() -> None:
    assert len(_examples("getting-started.md")) == 1


def test_the_first_supervision_tree_prints_what_getting_started_shows(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    [(code, output)] = _examples("getting-started.md")
    _run(code, str(DOCS / "getting-started.md"))
    assert capsys.readouterr().out == output
    [crash] = caplog.records
    assert crash.name == "trio_smith.supervisor"
    assert crash.getMessage() == "child 'db' of supervisor 'supervisor' failed"


#: Pages whose every ``trio.run(main)`` example prints what the page shows.
EXAMPLE_PAGES = {
    "tutorial.md": 6,
    "routing.md": 1,
    "patterns.md": 5,
    "supervision.md": 2,
    "operations.md": 1,
    "resilience.md": 3,
}


@pytest.mark.parametrize("page", sorted(EXAMPLE_PAGES))
def test_every_example_prints_what_its_page_shows(
    page: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # the events example writes tutorial.db here
    examples = _examples(page)
    assert len(examples) == EXAMPLE_PAGES[page]
    for number, (code, output) in enumerate(examples, 1):
        _run(code, f"{DOCS / page} example {number}")
        assert capsys.readouterr().out == output, f"{page} example {number}"


def _documented() -> set[str]:
    """The objects docs/api.md documents: ``.. autoclass:: trio_smith.Supervisor`` and kin."""
    text = (DOCS / "api.md").read_text()
    return set(re.findall(r"^\.\. (?:auto\w+|py:data):: ([\w.]+)", text, re.MULTILINE))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_the_api_reference_documents_every_public_name(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} does not exist yet")
    names: list[str] = getattr(module, "__all__", [])
    public = {f"{module_name}.{name}" for name in names}
    documented = {name for name in _documented() if name.rpartition(".")[0] == module_name}
    assert sorted(public - documented) == [], "add these to docs/api.md"
    assert sorted(documented - public) == [], "docs/api.md documents names that are not public"


def test_the_api_reference_shows_the_constants_as_they_are() -> None:
    # docs/api.md writes these out by hand: autodoc cannot read the comment
    # above a constant that a package re-exports.
    text = (DOCS / "api.md").read_text()
    assert f":value: {trio_smith.events.DEFAULT_BUFFER}\n" in text
    for category in trio_smith.events.CATEGORIES:
        assert f'``"{category}"``' in text
