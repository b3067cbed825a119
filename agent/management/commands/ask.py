"""``manage.py ask``: one question to the agent, its reply streamed here and stored as any reply."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent.services import message_ask
from chatproject.cli import InterruptibleCommand, ReplyPrinter, default_user, thread_for, usage_error
from chatproject.errors import DomainError, InvalidInput, NotFound
from messaging.models import ChatMessage


def ask_and_print(
    command: BaseCommand, *, thread: Any, user: Any, question: str, prefix: str = ""
) -> ChatMessage | None:
    """Send the question and stream the reply to the command's stdout; domain errors become
    CommandErrors (a refused message is a failure, an invalid one a usage error)."""
    printer = ReplyPrinter(command.stdout, prefix=prefix)
    try:
        _, reply = message_ask(thread=thread, sender=user, content=question, on_event=printer)
    except (InvalidInput, NotFound) as exc:
        raise usage_error(exc.message) from None
    except DomainError as exc:
        raise CommandError(exc.message) from None
    finally:
        printer.end()
    return reply


class Command(InterruptibleCommand):
    help = (
        "Ask the agent one question: the reply streams here as it is produced and both messages are stored "
        "(a new thread unless --thread). Exit 1 when the reply ends in an error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question", help="What to ask (quote it).")
        parser.add_argument("--user", help="Who asks (a username); default: the only user, when there is one.")
        parser.add_argument("--thread", help="Continue this thread (one of the user's) instead of starting one.")

    def handle(self, *args: Any, question: str, user: str | None, thread: str | None, **options: Any) -> None:
        asker = default_user(user)
        chat = thread_for(asker, thread)
        reply = ask_and_print(self, thread=chat, user=asker, question=question)
        self.stderr.write(f"thread {chat.pk}")
        if reply is None:
            raise CommandError("The reply was ended elsewhere (stopped) before it was complete.")
        if reply.type == ChatMessage.Type.ERROR:
            raise CommandError("The agent's reply ended in an error.")
