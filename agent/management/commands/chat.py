"""``manage.py chat``: talk to the agent in the terminal."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from agent.management.commands.ask import ask_and_print
from chatproject.cli import InterruptibleCommand, default_user, is_terminal, table, thread_for
from threads.selectors import thread_list

HELP = "/new starts a thread, /threads lists yours, /thread ID switches, /quit (or end of input) leaves."


class Command(InterruptibleCommand):
    help = f"An interactive chat with the agent; replies stream as they come and are stored. {HELP}"
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="Who chats (a username); default: the only user, when there is one.")
        parser.add_argument("--thread", help="Continue this thread (one of the user's); default: a new one.")

    def handle(self, *args: Any, user: str | None, thread: str | None, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        me = default_user(user)
        current = thread_for(me, thread) if thread else None
        interactive = is_terminal(self.stdout) and is_terminal(stdin)
        self.stdout.write(f"Chatting as {me.get_username()}. {HELP}")
        while True:
            if interactive:
                self.stdout.write("you> ", ending="")
                self.stdout.flush()
            line = stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text == "/quit":
                break
            if text == "/new":
                current = None
                self.stdout.write("A new thread starts with your next message.")
                continue
            if text == "/threads":
                rows = [(str(t.pk), t.title or "(untitled)", t.status) for t in thread_list(user=me)[:20]]
                table(self.stdout, ["id", "title", "status"], rows)
                continue
            if text.startswith("/thread "):
                try:
                    current = thread_for(me, text.split(maxsplit=1)[1])
                except CommandError as exc:
                    self.stderr.write(str(exc))
                    continue
                self.stdout.write(f"Now in {current} ({current.pk}).")
                continue
            if text.startswith("/"):
                self.stderr.write(f"Unknown command {text.split()[0]}. {HELP}")
                continue
            if current is None:
                current = thread_for(me, None)
            try:
                ask_and_print(self, thread=current, user=me, question=text, prefix="agent> " if interactive else "")
            except CommandError as exc:
                # A refused message (rate limit, replies in progress) ends nothing: say why, go on.
                self.stderr.write(str(exc))
        self.stdout.write("Bye.")
