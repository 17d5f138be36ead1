"""Imports point down the stack only (design rule 11), checked on the AST.

Three static checks: each import points down the layers; the pure core, and
everything it imports within trio_smith (transitively), imports none of
CORE_FORBIDDEN (trio above all); and the package's module-level imports have
no cycle. Static, because importing any ``trio_smith.*`` module first runs
``trio_smith/__init__.py``, the public face, which imports trio by design.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator, Mapping

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "trio_smith"

#: Layer of each module, by longest matching dotted prefix. Lower layers may
#: not import higher ones. Every module must be placed here.
LAYERS: dict[str, int] = {
    "trio_smith._exceptions": 0,
    "trio_smith._core": 1,
    "trio_smith._event": 2,  # the event model, below the supervision shell
    "trio_smith": 3,  # the supervision shell and the package's public face
    "trio_smith.events": 4,  # filter, codec, bus and stores (and BusClosed, StoreClosed)
    "trio_smith.resilience": 4,
    "trio_smith.routing": 5,  # agents, mailboxes, the router (over events, resilience)
    "trio_smith.prometheus": 5,  # the Prometheus collector (over events, resilience)
    "trio_smith._prometheus": 5,
    "trio_smith.observer": 5,  # the HTTP observer (over events; reads prometheus at 5)
    "trio_smith._observer": 5,
    "trio_smith.cli": 6,  # the trio-smith command, over everything
    "trio_smith.__main__": 7,
}

#: What the sans-io core must never import, directly or through the modules
#: of trio_smith it imports (docs/design.md rule 1).
CORE_FORBIDDEN = {"trio", "sqlite3", "cattrs", "time", "random", "logging", "asyncio", "threading"}

Graph = Mapping[str, set[str]]


def _modules(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _layer(module: str) -> int:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert matches, f"module {module} is not placed in tests/test_layering.py LAYERS"
    return LAYERS[max(matches, key=len)]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported.

    Class bodies, ``if``/``try``/``with`` blocks, but no function bodies and
    no ``if TYPE_CHECKING:`` block (its ``else:`` does run).
    """
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _module_level(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody"):
            nested = getattr(node, field, [])
            if isinstance(nested, list):
                yield from _module_level([s for s in nested if isinstance(s, ast.stmt)])
        for handler in getattr(node, "handlers", []):
            yield from _module_level(handler.body)
        for case in getattr(node, "cases", []):
            yield from _module_level(case.body)


def _imports(
    module: str,
    path: pathlib.Path,
    modules: Mapping[str, pathlib.Path] | None = None,
    *,
    module_level: bool = False,
) -> set[str]:
    """What ``module`` imports, as dotted names.

    ``from X import a`` counts as an import of ``X.a`` if that is a module of
    ``modules``, else of ``X``. ``module_level`` leaves out imports in
    function bodies and under ``if TYPE_CHECKING:``; without it, every import
    anywhere in the file counts.
    """
    modules = MODULES if modules is None else modules
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    nodes = _module_level(tree.body) if module_level else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
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
            for alias in node.names:
                # "from . import x" may name a submodule.
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return found


def _graph(modules: Mapping[str, pathlib.Path], *, module_level: bool) -> dict[str, set[str]]:
    """Which modules of the package each module imports."""
    return {
        module: {
            target
            for target in _imports(module, path, modules, module_level=module_level)
            if target in modules and target != module
        }
        for module, path in modules.items()
    }


def _forbidden_chain(
    start: str, graph: Graph, modules: Mapping[str, pathlib.Path], forbidden: set[str]
) -> list[str] | None:
    """A path of imports from ``start`` to a module that imports something forbidden.

    Walks the transitive closure of ``start`` over ``graph``; the returned
    list ends with the forbidden import itself. None if the closure is clean.
    """
    parents: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        module = queue.pop(0)
        bad = sorted(
            target
            for target in _imports(module, modules[module], modules)
            if target.split(".")[0] in forbidden
        )
        if bad:
            chain = [bad[0]]
            step: str | None = module
            while step is not None:
                chain.append(step)
                step = parents[step]
            return chain[::-1]
        for target in sorted(graph[module]):
            if target not in parents:
                parents[target] = module
                queue.append(target)
    return None


def _cycles(graph: Graph) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


MODULES = _modules()
CORE = sorted(m for m in MODULES if m == "trio_smith._core" or m.startswith("trio_smith._core."))


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = _layer(module)
    for target in _imports(module, MODULES[module]):
        if target in MODULES and not module.startswith(target + "."):
            assert _layer(target) <= own, f"{module} (layer {own}) imports {target} upward"


@pytest.mark.parametrize("module", CORE)
def test_core_is_sans_io(module: str) -> None:
    for target in _imports(module, MODULES[module]):
        top = target.split(".")[0]
        assert top not in CORE_FORBIDDEN, f"{module} imports {target}"
        if top == "trio_smith":
            assert target.startswith(("trio_smith._core", "trio_smith._exceptions")), (
                f"{module} imports {target}"
            )


@pytest.mark.parametrize("module", CORE)
def test_what_the_core_imports_is_sans_io_too(module: str) -> None:
    # Transitively: _core imports _exceptions, so _exceptions may not import
    # trio either (BusClosed and StoreClosed live in events/_closed.py).
    chain = _forbidden_chain(module, _graph(MODULES, module_level=False), MODULES, CORE_FORBIDDEN)
    assert chain is None, " -> ".join(chain)


def test_exceptions_module_imports_nothing_of_the_package() -> None:
    targets = _imports("trio_smith._exceptions", MODULES["trio_smith._exceptions"])
    assert not [t for t in targets if t.startswith("trio_smith")]


def test_no_import_cycles() -> None:
    assert _cycles(_graph(MODULES, module_level=True)) == []


def test_the_checker_sees_relative_imports() -> None:
    # Guards the checker itself: _core._supervision imports _exceptions relatively.
    targets = _imports("trio_smith._core._supervision", MODULES["trio_smith._core._supervision"])
    assert "trio_smith._exceptions" in targets
    assert "trio_smith._core._protocol" in targets


def _write_package(root: pathlib.Path, files: Mapping[str, str]) -> dict[str, pathlib.Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return _modules(root / "pkg")


def test_the_checker_finds_a_forbidden_import_through_another_module(
    tmp_path: pathlib.Path,
) -> None:
    # The bug the transitive check exists for: the core imports the errors
    # module, which imports trio.
    modules = _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "import trio\n",  # the public face may
            "pkg/_errors.py": "import attrs\nfrom ._closed import Closed\n",
            "pkg/_closed.py": "import trio\n",
            "pkg/_core/__init__.py": "",
            "pkg/_core/_a.py": "from . import _b\n",
            "pkg/_core/_b.py": "from .._errors import Error\n",
        },
    )
    graph = _graph(modules, module_level=False)
    chain = _forbidden_chain("pkg._core._a", graph, modules, CORE_FORBIDDEN)
    assert chain == ["pkg._core._a", "pkg._core._b", "pkg._errors", "pkg._closed", "trio"]
    assert _forbidden_chain("pkg._core", graph, modules, CORE_FORBIDDEN) is None


def test_the_checker_finds_cycles_at_module_level_only(tmp_path: pathlib.Path) -> None:
    modules = _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from ._a import A\n",  # a package and its module: no cycle
            "pkg/_a.py": "from ._b import B\n",
            "pkg/_b.py": "from . import _c\n",
            "pkg/_c.py": "import pkg._a\n",
            "pkg/_d.py": "def f():\n    from . import _e\n",
            "pkg/_e.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ._d import f\n"
            "else:\n    from ._f import g\n",
            "pkg/_f.py": "try:\n    from ._e import h\nexcept ImportError:\n    pass\n",
        },
    )
    assert _cycles(_graph(modules, module_level=True)) == [
        ["pkg._a", "pkg._b", "pkg._c"],
        ["pkg._e", "pkg._f"],
    ]
