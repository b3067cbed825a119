"""``manage.py show_thread``: a conversation in the terminal."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chatproject.cli import console, is_terminal, usage_error
from chatproject.errors import NotFound
from messaging.models import ChatMessage
from messaging.selectors import message_list, message_path
from threads.selectors import thread_get_any

ROLE_STYLES = {ChatMessage.Role.USER: "bold cyan", ChatMessage.Role.AI: "bold green", ChatMessage.Role.SYSTEM: "bold"}


def _tool_steps(message: ChatMessage) -> list[str]:
    """The agent's tool calls recorded in a reply's trajectory, one line each."""
    trajectory = message.metadata.get("trajectory") or {}
    steps = []
    for number in range(len(trajectory)):
        name = trajectory.get(f"tool_name_{number}")
        if name is None:
            break
        if name == "finish":
            continue
        observation = str(trajectory.get(f"observation_{number}", ""))[:200]
        steps.append(f"{name}({trajectory.get(f'tool_args_{number}', {})}) -> {observation}")
    return steps


class Command(BaseCommand):
    help = "Show a thread's conversation: the branch shown to its owner (--path active) or every message (all)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("thread", help="The thread's id.")
        parser.add_argument(
            "--path",
            choices=["active", "all"],
            default="active",
            help="The branch its owner sees (active, default) or every message in order (all).",
        )

    def handle(self, *args: Any, thread: str, path: str, **options: Any) -> None:
        try:
            chat = thread_get_any(thread_id=thread)
        except NotFound as exc:
            raise usage_error(f"{exc.message} ({thread})") from None
        messages = message_path(thread=chat) if path == "active" else list(message_list(thread=chat))
        if not is_terminal(self.stdout):
            self.stdout.write(f"# {chat} [{chat.status}] {chat.owner.get_username()} {chat.pk}")
            for message in messages:
                for step in _tool_steps(message):
                    self.stdout.write(f"  (tool) {step}")
                self.stdout.write(f"{message.role}: {message.content}")
            return
        from rich.markdown import Markdown
        from rich.rule import Rule
        from rich.text import Text

        out = console(self.stdout)
        out.print(Rule(Text(f"{chat} · {chat.status} · {chat.owner.get_username()}")))
        for message in messages:
            style = ROLE_STYLES.get(message.role, "bold")
            out.print(f"[{style}]{message.role}[/] [dim]{message.created_at:%Y-%m-%d %H:%M}[/]")
            for step in _tool_steps(message):
                out.print(f"  ⚙ {step}", style="dim", markup=False)
            if message.type == ChatMessage.Type.ERROR:
                out.print(message.content, style="red", markup=False)
            else:
                out.print(Markdown(message.content))
            out.print()
