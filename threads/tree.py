"""Pure functions over a conversation's tree, given as ``(id, parent_id)`` pairs oldest first.

They take plain ids so that both ``threads`` (switching a thread's branch) and ``messaging``
(paths, sibling info) use one definition of the tree without threads importing messaging.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

Id = TypeVar("Id", bound=Hashable)


def path_to(pairs: Iterable[tuple[Id, Id | None]], leaf: Id) -> list[Id]:
    """The ids from the root down to ``leaf`` (empty when ``leaf`` is not among the pairs)."""
    parent_of = dict(pairs)
    if leaf not in parent_of:
        return []
    path: list[Id] = []
    seen: set[Id] = set()
    node: Id | None = leaf
    while node is not None and node not in seen and node in parent_of:
        seen.add(node)
        path.append(node)
        node = parent_of[node]
    path.reverse()
    return path


def newest_leaf(pairs: Sequence[tuple[Id, Id | None]], start: Id) -> Id:
    """The newest message under ``start`` (itself when it has no children): the leaf of the branch
    last written to below it, which is where a user clicking ``start`` expects to land.

    ``pairs`` must be oldest first; a child is always newer than its parent, so the newest
    descendant has no children of its own.
    """
    inside: set[Id] = {start}
    newest = start
    for node, parent in pairs:
        if parent in inside and node not in inside:
            inside.add(node)
            newest = node
    return newest
