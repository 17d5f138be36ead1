"""Sphinx configuration: `make docs` builds docs/_build/html, warnings as errors."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.napoleon.docstring import GoogleDocstring

import trio_smith

project = "trio_smith"
author = "trio_smith developers"
copyright = "trio_smith developers"
release = trio_smith.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: `[text](page.md#heading)` links reach headings down to ###.
myst_heading_anchors = 3

# Google-style docstrings: Args:, Returns:, Raises:.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False


# Attribute and property docstrings here are prose ("Forgotten: the name is
# free and the mailbox closed."), not Google's "type: description": keep them
# as written, or napoleon shows the words before the first colon as the type.
# The types come from the annotations.
def _prose_attribute_docstring(self: GoogleDocstring) -> list[str]:
    return self._consume_to_end()


GoogleDocstring._parse_attribute_docstring = _prose_attribute_docstring  # type: ignore[method-assign]

autodoc_member_order = "bysource"
# Types in the signature, as trio's docs show them, one parameter a line when
# the signature is long (CircuitBreaker has twenty).
autodoc_typehints = "signature"
maximum_signature_line_length = 88
autodoc_default_options = {"members": True, "show-inheritance": True}

# `make docs` builds with -n: every reference must resolve, except those
# that could only resolve through intersphinx, which CI cannot use (no network).
_EXTERNAL = sorted(
    sys.stdlib_module_names
    | {"trio", "attr", "attrs", "cattrs", "rich", "prometheus_client", "opentelemetry"}
)
nitpick_ignore_regex = [
    # Names from the standard library and the dependencies (uuid.UUID, trio.WouldBlock).
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})\..+"),
    # Type variables, one capital letter (PhiAccrualFailureDetector's node type N).
    (r"py:.*", r"(trio_smith\.[\w.]*_\w+\.)?[A-Z]"),
    # CircuitBreaker.config's type, which has no public home.
    (r"py:class", r"trio_smith\._core\._breaker\.BreakerConfig"),
    # serve(store=...)'s type: what serve needs of an event store (a protocol
    # of the layer below the events package, docs/design.md rule 11).
    (r"py:class", r"trio_smith\._serve\.EventSink"),
]

html_theme = "furo"
html_title = f"trio_smith {release}"

# Each public name has exactly one public home (tests/test_exports.py), but
# its code lives in a private module: annotations and base classes name that
# private path. The two hooks below show and link the public name instead.
_HOMES = ["trio_smith", "trio_smith.events", "trio_smith.resilience", "trio_smith.routing"]


def _public_names() -> dict[str, str]:
    """Map each public name to its home module, e.g. "Supervisor" -> "trio_smith"."""
    homes: dict[str, str] = {}
    for home in _HOMES:
        try:
            module = importlib.import_module(home)
        except ImportError:  # a home not written yet
            continue
        for name in getattr(module, "__all__", ()):
            homes[name] = home
    return homes


_PUBLIC = _public_names()


def _drop_private_bases(
    app: Sphinx, name: str, obj: object, options: object, bases: list[Any]
) -> None:
    """Hide base classes that have no public home (``_Base``, ``IdentityHash``)."""
    bases[:] = [
        base
        for base in bases
        if not getattr(base, "__module__", "").startswith("trio_smith")
        or getattr(base, "__name__", "") in _PUBLIC
    ] or [object]


def _link_public_home(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve ``trio_smith._private.Name[.attr]`` and bare ``Name.attr`` to the public home."""
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    parts = target.split(".")
    candidates = []
    for i, part in enumerate(parts):
        if part in _PUBLIC:
            candidates.append(".".join([_PUBLIC[part], *parts[i:]]))
            break
    else:
        cls = node.get("py:class")
        if cls in _PUBLIC:
            candidates.append(".".join([_PUBLIC[cls], cls, *parts]))
    domain = env.get_domain("py")
    for candidate in candidates:
        if candidate != target:
            ref = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
            if ref is not None:
                return ref
    return None


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-bases", _drop_private_bases)
    app.connect("missing-reference", _link_public_home)
