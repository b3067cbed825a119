"""``manage.py agent_tools``: the agent's tools, or one of them run by hand."""

from __future__ import annotations

import inspect
import json as jsonlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent.tools import ToolContext, build_tools
from chatproject.cli import panel, table, usage_error, user_named, write_json


def _describe(function: Any) -> tuple[str, str]:
    signature = str(inspect.signature(function))
    doc = " ".join((inspect.getdoc(function) or "").split())
    return signature, doc


class Command(BaseCommand):
    help = "List the agent's tools (the registry, in the order the model reads them), or run one with --run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", metavar="TOOL", help="Run this tool once.")
        parser.add_argument("--input", default="{}", help='Its arguments as a JSON object: \'{"expression": "2+2"}\'.')
        parser.add_argument("--user", help="Run as this user (the memory tool searches their messages).")
        parser.add_argument("--json", action="store_true", help="JSON instead of a table.")

    def handle(self, *args: Any, run: str | None, input: str, user: str | None, json: bool, **options: Any) -> None:
        context = ToolContext()
        if user:
            from agent.memory import memory_searcher

            owner = user_named(user)
            context = ToolContext(user_id=owner.pk, memory_search=memory_searcher(user_id=owner.pk))
        tools = build_tools(context)
        if run is None:
            described = {name: _describe(function) for name, function in tools.items()}
            if json:
                write_json(
                    self.stdout, [{"name": n, "signature": s, "description": d} for n, (s, d) in described.items()]
                )
            else:
                table(self.stdout, ["tool", "arguments", "description"], [(n, s, d) for n, (s, d) in described.items()])
            return
        if run not in tools:
            raise usage_error(f"No tool {run!r}; the tools are: {', '.join(tools)}.")
        try:
            arguments = jsonlib.loads(input)
        except ValueError as exc:
            raise usage_error(f"--input is not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise usage_error("--input must be a JSON object of the tool's arguments.")
        try:
            output = tools[run](**arguments)
        except TypeError as exc:
            raise usage_error(f"{run}: {exc}") from None
        except Exception as exc:
            raise CommandError(f"{run} failed: {type(exc).__name__}: {exc}") from None
        if json:
            write_json(self.stdout, {"tool": run, "input": arguments, "output": output})
        else:
            panel(self.stdout, str(output), title=run)
