"""Imports point down the stack only (DESIGN.md section 1), checked on the AST."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "trio_smith"

#: Layer of each module, by longest matching dotted prefix. Lower layers may
#: not import higher ones. Every module must be placed here.
LAYERS: dict[str, int] = {
    "trio_smith._exceptions": 0,
    "trio_smith._core": 1,
    "trio_smith._event": 2,  # the event model, below the supervision shell
    "trio_smith": 3,  # the supervision shell and the package's public face
    "trio_smith.events": 4,  # filter, codec, bus and stores
    "trio_smith.resilience": 4,
    "trio_smith.routing": 5,  # agents, mailboxes, the router (over events, resilience)
    "trio_smith.cli": 6,  # the trio-smith command, over everything
    "trio_smith.__main__": 7,
}

#: What the sans-io core must never import (STYLE.md section 1).
CORE_FORBIDDEN = {"trio", "sqlite3", "cattrs", "time", "random", "logging", "asyncio", "threading"}


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _layer(module: str) -> int:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert matches, f"module {module} is not placed in tests/test_layering.py LAYERS"
    return LAYERS[max(matches, key=len)]


def _imports(module: str, path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # "from . import x" may name a submodule.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


MODULES = _modules()


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = _layer(module)
    for target in _imports(module, MODULES[module]):
        if target in MODULES and not module.startswith(target + "."):
            assert _layer(target) <= own, f"{module} (layer {own}) imports {target} upward"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("trio_smith._core")))
def test_core_is_sans_io(module: str) -> None:
    for target in _imports(module, MODULES[module]):
        top = target.split(".")[0]
        assert top not in CORE_FORBIDDEN, f"{module} imports {target}"
        if top == "trio_smith":
            assert target.startswith(("trio_smith._core", "trio_smith._exceptions")), (
                f"{module} imports {target}"
            )


def test_exceptions_module_imports_nothing_of_the_package() -> None:
    targets = _imports("trio_smith._exceptions", MODULES["trio_smith._exceptions"])
    assert not [t for t in targets if t.startswith("trio_smith")]


def test_the_checker_sees_relative_imports() -> None:
    # Guards the checker itself: _core._supervision imports _exceptions relatively.
    targets = _imports("trio_smith._core._supervision", MODULES["trio_smith._core._supervision"])
    assert "trio_smith._exceptions" in targets
    assert "trio_smith._core._protocol" in targets
