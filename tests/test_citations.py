"""Every rule the repository cites is in the repository.

Comments, docstrings and docs cite rules by id: design rules by number
(``docs/design.md rule 17``, ``design rule 17``) and the lettered lists of
docs/design.md (``D5``, ``B3``, ``K3``, ``A6``, ``E5``, ``G1``, ``T1``). This
checks that no citation points at a document the repository does not ship,
and that every cited number and id is defined in docs/design.md, once.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).parent.parent
DESIGN = ROOT / "docs" / "design.md"

#: What is scanned: these directories (docs/_build excluded) and files.
SCANNED_DIRS = ("trio_smith", "tests", "benchmarks", "docs")
SCANNED_FILES = ("README.md", "CHANGELOG.md", "Makefile", "pyproject.toml")
SUFFIXES = {".py", ".md", ".toml", ".erl", ".txt", ".rst", ".cfg", ".ini", ".sh"}
SKIPPED_PARTS = {"_build", "__pycache__"}

#: The names of the outside notes the project was designed from. They are
#: put together from their parts so that this file does not cite them itself.
_NOTES_MD = ("DES" + "IGN", "A" + "PI", "STY" + "LE")
_REFERENCE_NAMES = ("o" + "tp", "trio" + "-notes", "scale" + "-out", "resilience" + "-companions")
#: The folder the outside notes live in, and the one above it.
_FOLDER = "refer" + "ence"
_SHARED = ".." + "/shared"


def _cite(stem: str, rest: str = "") -> str:
    """A citation of an outside note, for the examples below."""
    return f"{stem}.md{rest}"


#: Citations of documents the repository does not ship, and what each is.
UNSHIPPED: dict[str, re.Pattern[str]] = {
    "the upper-case design notes (*.md)": re.compile(r"\b(?:" + "|".join(_NOTES_MD) + r")\.md\b"),
    f"{_FOLDER}/...": re.compile(rf"\b{_FOLDER}/"),
    "a reference note by name": re.compile(
        r"\b"
        + _REFERENCE_NAMES[0]
        + r"\.md\b|\b(?:"
        + "|".join(re.escape(name) for name in _REFERENCE_NAMES[1:])
        + r")\b"
    ),
    "a numbered section of resilience.md / events.md": re.compile(
        r"\b(?:resilience|events)\.md(?:'s)?\s+(?:sections?\b|trap\b|scenarios?\b|T?\d)"
    ),
    "the design notes": re.compile(r"\bdesign notes\b"),
    "a path into shared/": re.compile(r"(?<![\w.-])shared/"),
    "an issue of a tracker": re.compile(r"\bissue #?\d+"),
    "a bare section number": re.compile(r"(?<!RFC \d\d\d\d )\bsections? \d"),
    "Akka's backoff rules as B<n> (they are K1-K12)": re.compile(r"\bAkka B\d"),
    "a bare R<n> (OTP rules are R<section>.<n>; routing is G<n>)": re.compile(
        r"\bR[1-9]\d?\b(?!\\?\.\d)"
    ),
}

#: ``design rule 17``, ``docs/design.md rule 17``, ``design rules 18 and 31``.
DESIGN_RULE = re.compile(
    r"(?i)\bdesign(?:\.md)? rules? (\d+)(?:(?:\s*(?:,|and|-|\u2013|to)\s*)(\d+))?"
)
#: ``rule 25`` inside docs/design.md itself.
LOCAL_RULE = re.compile(r"\brules? (\d+)(?:(?:\s*(?:,|and|-|\u2013|to)\s*)(\d+))?")
#: The lettered ids of docs/design.md.
LETTERED = re.compile(r"\b([ABDEGKT][1-9]\d?)\b")
#: How docs/design.md defines them: a bold lead at the start of a line.
DEFINED_RULE = re.compile(r"^\*\*(\d+)\. ", re.MULTILINE)
DEFINED_ID = re.compile(r"^\*\*([A-Z][1-9]\d?)\. ", re.MULTILINE)


def _scanned() -> Iterator[pathlib.Path]:
    this = pathlib.Path(__file__).resolve()
    for name in SCANNED_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts)
                and path.resolve() != this
            ):
                yield path
    for name in SCANNED_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name


def _lines() -> Iterator[tuple[str, int, str]]:
    for path in _scanned():
        where = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield where, number, line


def unshipped_citations(line: str) -> list[str]:
    """What ``line`` cites that the repository does not ship."""
    return [what for what, pattern in UNSHIPPED.items() if pattern.search(line)]


def defined(design: str) -> tuple[list[int], list[str]]:
    """The rule numbers and the lettered ids docs/design.md defines, in order."""
    numbers = [int(n) for n in DEFINED_RULE.findall(design)]
    return numbers, DEFINED_ID.findall(design)


def undefined_citations(line: str, rules: set[int], ids: set[str], *, local: bool) -> list[str]:
    """The rule numbers and ids ``line`` cites that docs/design.md lacks."""
    missing = []
    for pattern in (DESIGN_RULE, LOCAL_RULE) if local else (DESIGN_RULE,):
        for match in pattern.finditer(line):
            missing += [
                f"rule {n}" for n in match.groups() if n is not None and int(n) not in rules
            ]
    missing += [id_ for id_ in LETTERED.findall(line) if id_ not in ids]
    return missing


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_no_citation_points_outside_the_repository() -> None:
    problems = [
        f"{where}:{number}: {', '.join(found)}: {line.strip()}"
        for where, number, line in _lines()
        if (found := unshipped_citations(line))
    ]
    assert not problems, _report(problems)


def test_every_cited_design_rule_and_id_is_defined() -> None:
    numbers, ids = defined(DESIGN.read_text(encoding="utf-8"))
    design = DESIGN.relative_to(ROOT).as_posix()
    problems = [
        f"{where}:{number}: {', '.join(missing)} not in docs/design.md: {line.strip()}"
        for where, number, line in _lines()
        if (missing := undefined_citations(line, set(numbers), set(ids), local=where == design))
    ]
    assert not problems, _report(problems)


def test_design_defines_each_rule_and_id_once() -> None:
    numbers, ids = defined(DESIGN.read_text(encoding="utf-8"))
    assert numbers == list(range(1, len(numbers) + 1))
    twice = sorted({id_ for id_ in ids if ids.count(id_) > 1})
    assert not twice, f"defined more than once in docs/design.md: {twice}"
    # R<section>.<n> are OTP's rules: no list of docs/design.md may be R<n>.
    assert not [id_ for id_ in ids if id_.startswith("R")]


@pytest.mark.parametrize(
    "line",
    [
        f"# ordered shutdown ({_cite(_NOTES_MD[0])} section 2).",
        f"the contract of {_cite(_NOTES_MD[1])}",
        f"({_cite(_NOTES_MD[2])} 3)",
        f"see {_FOLDER}/events.md 4.3",
        f"KeyboardInterrupt ({_REFERENCE_NAMES[1]} 4)",
        f"Rule numbers are those of {_SHARED}/{_FOLDER}/{_cite(_REFERENCE_NAMES[0])}",
        f"measured in {_REFERENCE_NAMES[2]} section 2",
        "resilience.md 1.6 and its trio mapping",
        "events.md 4.1 says",
        "Targets (design notes, section 7)",
        "in CI (issue 2)",
        "One intensity window (OTP section 1.5).",
        "delays 1, 2 and 4 (Akka B3).",
        "see [design](design.md), deviation R1.)",
    ],
)
def test_an_unshipped_citation_is_found(line: str) -> None:
    assert unshipped_citations(line)


@pytest.mark.parametrize(
    "line",
    [
        "(docs/design.md rule 14)",
        "Ids are UUIDv7 (RFC 9562 section 5.7)",
        "OTP R1.3 and R8.2-R8.4",
        r"by itself \(OTP R1\.3\)$",
        "see [resilience](resilience.md) and docs/events.md",
        "# noqa: B004",
    ],
)
def test_a_shipped_citation_passes(line: str) -> None:
    assert not unshipped_citations(line)
    assert not undefined_citations(line, {14}, set(), local=False)


def test_an_undefined_rule_or_id_is_found() -> None:
    rules, ids = {1, 2, 17}, {"D1", "K3"}
    assert undefined_citations("design rule 17, D1, K3", rules, ids, local=False) == []
    assert undefined_citations("Design rule 99 and D1", rules, ids, local=False) == ["rule 99"]
    assert undefined_citations("design rules 2 and 40", rules, ids, local=False) == ["rule 40"]
    assert undefined_citations("design rules 2\u201340", rules, ids, local=False) == ["rule 40"]
    assert undefined_citations("(docs/design.md B3, K3)", rules, ids, local=False) == ["B3"]
    assert undefined_citations("as rule 18 says", rules, ids, local=False) == []
    assert undefined_citations("as rule 18 says", rules, ids, local=True) == ["rule 18"]
    assert defined("**1. One.** x\n**B1. Two.** y\nnot **2. this**\n") == ([1], ["B1"])
