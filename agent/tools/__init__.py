"""The agent's tools. Each tool is a module that registers itself; nothing else names them.

A tool is a plain function of keyword arguments (typed, with a docstring the model reads) that
returns an observation string. What a tool needs from the conversation (the user, the thread's
files, the memory index) comes in a ``ToolContext`` gathered before the agent runs, so tools
never touch the database (the agent's loop runs them on other threads).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AttachmentInfo:
    filename: str
    file_type: str
    size: int
    path: str


@dataclass
class ToolContext:
    """What tools may know of the conversation: gathered up front, read-only while the agent runs."""

    user_id: int | None = None
    thread_id: str | None = None
    message_id: str | None = None
    attachments: list[AttachmentInfo] = field(default_factory=list)
    memory_search: Callable[[str, int], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool: ``make(context)`` returns the function the agent calls."""

    name: str
    make: Callable[[ToolContext], Callable[..., str]]
    # Where the tool stands in the list the model reads (lower first).
    order: int = 100


_registry: dict[str, ToolSpec] = {}


Tool = Callable[..., str]
ToolFactory = Callable[[ToolContext], Tool]


def register(name: str, *, order: int = 100) -> Callable[[ToolFactory], ToolFactory]:
    """``@register("calculator")`` on a factory ``make(context) -> tool function`` adds the tool."""

    def decorator(make: ToolFactory) -> ToolFactory:
        _registry[name] = ToolSpec(name=name, make=make, order=order)
        return make

    return decorator


def load_all() -> dict[str, ToolSpec]:
    """Import every module of this package (each registers its tools) and return the registry."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_registry.items(), key=lambda item: (item[1].order, item[0])))


def build_tools(context: ToolContext) -> dict[str, Callable[..., str]]:
    """Every registered tool, bound to this conversation, by name."""
    return {name: spec.make(context) for name, spec in load_all().items()}
