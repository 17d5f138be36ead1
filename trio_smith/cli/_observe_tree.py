"""What ``trio-smith observe`` shows: a tree from an observer's JSON or from stored events.

Pure functions and small classes, no trio and no I/O: :func:`tree_from_json`
reads an ``/api/tree`` document (version 1, docs/observer.md);
:class:`StoreTree` rebuilds the tree from ``supervision.*`` events, one at a
time (``--replay``), and :func:`rebuild` folds a whole list; :func:`event_line`
words an event for the log below the tree; :class:`ObserveView` draws both,
laid out for the terminal like the demo's live view, with its pieces.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, final

import attrs
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.text import Text
from rich.tree import Tree

from ..events import Event, SupervisionEvent
from ._demo_view import Line, _phi_style, _status, events_panel
from ._demo_view import Observer as Wording

__all__ = [
    "ObserveView",
    "StoreTree",
    "ViewNode",
    "event_line",
    "rebuild",
    "tree_from_json",
]

#: The ``/api/tree`` shape this client reads (``trio_smith.observer.TREE_VERSION``).
TREE_VERSION: Final = 1

#: What a supervisor shows once it gave up, before its ``supervisor_stopped``.
GAVE_UP: Final = "gave up"


@final
@attrs.frozen(kw_only=True, slots=True)
class ViewNode:
    """One node of the tree ``observe`` draws.

    Attributes:
        id: the supervisor's name (a root) or the child's id.
        supervisor: whether it is (or runs) a supervisor.
        status: a ``SupervisorState`` value for a root, a ``ChildStatus``
            value (or ``failed``) for a child.
        restarts: times it was restarted.
        phi: its hung-child suspicion, if it heartbeats.
        os_pid: the program's pid (``os_process`` children).
        status_text: the program's last ``STATUS=`` message.
        children: the nodes below, in start order.
    """

    id: str
    supervisor: bool = False
    status: str
    restarts: int = 0
    phi: float | None = None
    os_pid: int | None = None
    status_text: str | None = None
    children: tuple[ViewNode, ...] = ()


class TreeFormatError(ValueError):
    """An ``/api/tree`` document this client cannot read (the message says why)."""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # The observer writes an infinite phi as 1e308 (JSON has no infinity).
        return math.inf if value >= 1e308 else float(value)
    return None


def _supervisor_node(doc: Mapping[str, object], *, id: str) -> ViewNode:
    children = doc.get("children")
    return ViewNode(
        id=id,
        supervisor=True,
        status=str(doc.get("state")),
        restarts=_int(doc.get("restarts")),
        children=tuple(_child_node(c) for c in children if isinstance(c, dict))
        if isinstance(children, list)
        else (),
    )


def _child_node(doc: Mapping[str, object]) -> ViewNode:
    below: list[ViewNode] = []
    supervisors = doc.get("supervisors")
    nested = (
        [s for s in supervisors if isinstance(s, dict)] if isinstance(supervisors, list) else []
    )
    if len(nested) == 1:
        # The usual case (a Supervisor.spec child): its children hang under the child.
        below = list(_supervisor_node(nested[0], id="").children)
    else:
        below = [_supervisor_node(s, id=str(s.get("name"))) for s in nested]
    status_text = doc.get("status_text")
    return ViewNode(
        id=str(doc.get("id")),
        supervisor=bool(nested),
        status=str(doc.get("status")),
        restarts=_int(doc.get("restarts")),
        phi=_opt_float(doc.get("phi")),
        os_pid=_opt_int(doc.get("os_pid")),
        status_text=status_text if isinstance(status_text, str) else None,
        children=tuple(below),
    )


def tree_from_json(doc: object) -> ViewNode:
    """The tree an ``/api/tree`` document describes.

    Args:
        doc: the decoded JSON.

    Raises:
        TreeFormatError: not a version 1 tree document.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("root"), dict):
        raise TreeFormatError("not a tree document (no 'root')")
    version = doc.get("version")
    if version != TREE_VERSION:
        raise TreeFormatError(
            f"tree version {version!r}; this trio-smith reads version {TREE_VERSION}"
        )
    root = doc["root"]
    return _supervisor_node(root, id=str(root.get("name")))


# ------------------------------------------------------------ from stored events


@attrs.define
class _Child:
    status: str
    restarts: int = 0
    phi: float | None = None
    os_pid: int | None = None


@attrs.define
class _Sup:
    status: str
    children: dict[str, _Child] = attrs.field(factory=dict)


_SUPERVISOR_ENDS: Final = frozenset(
    {SupervisionEvent.SUPERVISOR_GAVE_UP, SupervisionEvent.SUPERVISOR_STOPPED}
)


@final
class StoreTree:
    """The supervision tree as ``supervision.*`` events describe it, event by event.

    Each supervisor is known by its path (``app/workers``); a supervisor at
    ``P/c`` hangs under child ``c`` of ``P``. A supervisor that starts again
    after it stopped (its parent restarted it) starts with fresh children,
    as a new ``Supervisor`` does. Other events are ignored.
    """

    __slots__ = ("_sups",)

    def __init__(self) -> None:
        self._sups: dict[str, _Sup] = {}

    def see(self, event: Event) -> None:
        """Apply one event."""
        kind = event.type
        payload = event.payload
        path = payload.get("supervisor")
        if not isinstance(path, str):
            return
        sup = self._sups.get(path)
        if sup is None or (sup.status == "stopped" and kind not in _SUPERVISOR_ENDS):
            # A supervisor publishes its children's starts before its own:
            # the first event after it stopped begins a new one (its parent
            # restarted it), with fresh children, as a new Supervisor has.
            sup = self._sups[path] = _Sup(status="starting")
        if kind == SupervisionEvent.SUPERVISOR_STARTED:
            sup.status = "running"
            return
        if kind == SupervisionEvent.SUPERVISOR_GAVE_UP:
            sup.status = GAVE_UP
            return
        if kind == SupervisionEvent.SUPERVISOR_STOPPED:
            sup.status = "stopped"
            return
        child_id = payload.get("child_id")
        if not isinstance(child_id, str):
            return
        child = sup.children.get(child_id)
        if kind == SupervisionEvent.CHILD_STARTED:
            if child is None:
                child = sup.children[child_id] = _Child(status="running")
            child.status = "running"
            child.phi = None
            child.os_pid = _opt_int(payload.get("os_pid"))
        elif child is None:
            child = sup.children[child_id] = _Child(status="running")
        if kind == SupervisionEvent.CHILD_FAILED:
            child.status = "failed"
            child.os_pid = None
            if payload.get("reason") == "hung":
                child.phi = _opt_float(payload.get("phi"))
        elif kind == SupervisionEvent.CHILD_RESTARTED:
            child.restarts += 1
            child.status = "running"
        elif kind == SupervisionEvent.CHILD_STOPPED:
            child.status = "stopped"
            child.os_pid = None

    def roots(self) -> tuple[ViewNode, ...]:
        """The trees, in the order their roots started (usually one)."""
        return tuple(self._node(path, path) for path in self._sups if not self._nested(path))

    def _nested(self, path: str) -> bool:
        parent, _, child = path.rpartition("/")
        sup = self._sups.get(parent)
        return sup is not None and child in sup.children

    def _node(self, path: str, id: str, child: _Child | None = None) -> ViewNode:
        sup = self._sups[path]
        below = tuple(
            self._node(f"{path}/{cid}", cid, c)
            if f"{path}/{cid}" in self._sups
            else ViewNode(id=cid, status=c.status, restarts=c.restarts, phi=c.phi, os_pid=c.os_pid)
            for cid, c in sup.children.items()
        )
        if child is None:
            return ViewNode(id=id, supervisor=True, status=sup.status, children=below)
        status = GAVE_UP if sup.status == GAVE_UP and child.status != "running" else child.status
        return ViewNode(
            id=id, supervisor=True, status=status, restarts=child.restarts, children=below
        )


def rebuild(events: Iterable[Event]) -> tuple[ViewNode, ...]:
    """The trees as they stand after ``events`` (in stored order).

    Args:
        events: any events; those not ``supervision.*`` are ignored.

    Returns:
        The root trees, in the order they started.
    """
    tree = StoreTree()
    for event in events:
        tree.see(event)
    return tree.roots()


#: Events worded by the log beyond those the demo words.
_PLAIN_WORDS: Final = {
    SupervisionEvent.SUPERVISOR_STARTED: ("status", "{supervisor} started"),
    SupervisionEvent.SUPERVISOR_STOPPED: ("status", "{supervisor} stopped ({reason})"),
    SupervisionEvent.CHILD_STOPPED: ("status", "{supervisor}/{child_id} stopped ({reason})"),
}


def event_line(wording: Wording, event: Event, at: float) -> Line | None:
    """``event`` as a line of the log (None: not shown).

    Restarts, hung children, supervisors giving up and breaker moves are
    worded as the demo words them (``wording`` remembers each failure for
    the line of its restart); supervisors starting and stopping, and
    children stopping, in a line of their own.

    Args:
        wording: the demo's event wording, rooted at the tree's root.
        event: any event.
        at: seconds since the view began.
    """
    line = wording.see(event, at)
    if line is not None:
        return line
    words = _PLAIN_WORDS.get(event.type)
    if words is None:
        return None
    kind, text = words
    payload = {k: event.payload.get(k, "?") for k in ("supervisor", "child_id", "reason")}
    return Line(at=at, kind=kind, text=text.format_map(payload))


# ------------------------------------------------------------ drawing


def _label(node: ViewNode) -> Text:
    # One row each, cut with an ellipsis: the tree's height is its node count.
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(node.id, style="bold" if node.supervisor else "")
    label.append("  ")
    label.append_text(_status(node.status))
    if node.restarts:
        label.append(f"  restarts {node.restarts}", style="yellow")
    if node.phi is not None:
        label.append("  phi ")
        label.append(
            "inf" if math.isinf(node.phi) else f"{node.phi:.2f}", style=_phi_style(node.phi)
        )
    if node.os_pid is not None:
        label.append(f"  pid {node.os_pid}", style="dim")
    if node.status_text:
        label.append(f"  {node.status_text}", style="dim")
    return label


def _add(branch: Tree, node: ViewNode) -> None:
    for child in node.children:
        _add(branch.add(_label(child)), child)


def render_tree(roots: Sequence[ViewNode]) -> RenderableType:
    """The trees as rich renders them, one row per node."""
    if not roots:
        return Text("(no supervisor yet)", style="dim")
    drawn: list[RenderableType] = []
    for root in roots:
        tree = Tree(_label(root), guide_style="dim")
        _add(tree, root)
        drawn.append(tree)
    return Group(*drawn)


@final
class ObserveView:
    """The tree in a panel, the newest log lines below it in the rest of the height.

    Laid out at each redraw, as the demo's ``LiveView``: on 80x24 a tree of
    up to 15 nodes leaves room for the last five lines.

    Args:
        roots: the trees.
        log: the lines, oldest first.
        title: the tree panel's title (where it comes from).
        subtitle: its bottom edge (what the view is at).
        fill: the log takes the rest of the terminal's height (a live view),
            rather than only the rows it needs (one frame, ``--once``).
    """

    def __init__(
        self,
        roots: Sequence[ViewNode],
        log: Sequence[Line],
        *,
        title: str,
        subtitle: str,
        fill: bool = True,
    ) -> None:
        self.fill = fill
        self.roots = roots
        self.log = log
        self.title = title
        self.subtitle = subtitle

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        top = Panel(
            render_tree(self.roots),
            title=self.title,
            title_align="left",
            subtitle=self.subtitle,
            subtitle_align="right",
            border_style="blue",
        )
        yield top
        yield events_panel(top, self.log, console, options, min_rows=1, fill=self.fill)
