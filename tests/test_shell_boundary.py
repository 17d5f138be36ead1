"""Nothing outside the supervision shell touches its private members.

The shell (``trio_smith/_supervision/``) offers the public API and, for
``trio_smith.routing``, ``listen_status``, ``hung_verdict`` and
``only_cancelled`` (its package ``__init__``). Other modules import only
from the package, never from its private modules, and never read an
underscored attribute of an object that is not their own ``self``.
"""

from __future__ import annotations

import ast
import pathlib

import trio_smith._supervision as shell
from trio_smith._supervision._context import ChildContext
from trio_smith._supervision._runtime import Runtime

PACKAGE = pathlib.Path(shell.__file__).parent.parent
SHELL = pathlib.Path(shell.__file__).parent

#: The shell's private member names: those of ChildContext and Runtime.
PRIVATE = {name for name in ChildContext.__slots__ if name.startswith("_")} | {
    name for name in vars(Runtime) if name.startswith("_") and not name.startswith("__")
}


def outside_modules() -> list[pathlib.Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if SHELL not in p.parents]


def own_attributes(tree: ast.AST) -> set[str]:
    """Attributes the module gives its own objects (``self.x = ...``, ``__slots__``)."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def violations(path: pathlib.Path, tree: ast.AST) -> list[str]:
    found = []
    private = PRIVATE - own_attributes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            parts = node.module.split(".")
            if "_supervision" in parts and parts[-1] != "_supervision":
                found.append(f"{path}:{node.lineno}: imports from {node.module}")
            if parts[-1] == "_supervision":
                for alias in node.names:
                    if alias.name not in shell.__dict__ or alias.name.startswith("_"):
                        found.append(f"{path}:{node.lineno}: imports {alias.name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path}:{node.lineno}: reads .{node.attr}")
    return found


def test_no_module_outside_the_shell_touches_its_privates() -> None:
    found = []
    for path in outside_modules():
        found += violations(path, ast.parse(path.read_text(), str(path)))
    assert found == []


def test_the_check_sees_a_module_that_reaches_in() -> None:
    source = (
        "from trio_smith._supervision._runtime import Runtime\n"
        "from .._supervision import _private\n"
        "def f(ctx):\n    return ctx._watch, ctx._owner\n"
    )
    found = violations(pathlib.Path("bad.py"), ast.parse(source))
    assert found == [
        "bad.py:1: imports from trio_smith._supervision._runtime",
        "bad.py:2: imports _private",
        "bad.py:4: reads ._watch",
        "bad.py:4: reads ._owner",
    ]
