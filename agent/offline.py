"""The built-in offline model: deterministic, no network, and a real participant in DSPy's loop.

It is a DSPy engine (``complete(Request) -> Response``, ``stream(Request)``) that reads the
prompt DSPy's ChatAdapter builds and writes the fields DSPy parses. In a ReAct step it picks a
tool from the user's words (or ``finish``) with its arguments; in the final step it composes the
answer from the tools' observations. Its stream sends the text a word at a time, so answers
stream through DSPy's listeners like a hosted model's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from dspy.lm15 import Message, Response, TextPart, Usage

from .tools.code_executor import extract_code

FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## \w+ ## \]\]|\Z)", re.S)
HELP = (
    "I'm running on the built-in offline model, so I answer with my tools. Try:\n\n"
    "- arithmetic: *what is 15% of 240?*\n"
    "- your earlier messages: *what did I say about my trip?*\n"
    "- an attached file: *summarize this file*\n"
    "- Python: *run this Python: print(sum(range(10)))*\n"
    "- text: *count the words in: …*, *keywords of: …*\n"
    "- the web and the weather, when the server has them configured.\n\n"
    "Set `AGENT_LM` to a hosted model for open conversation."
)

_CODE = re.compile(r"```|\b(run|execute|exec)\b[^.?!]*\b(python|code|script)\b|^\s*python\s*:", re.I | re.M)
_FILE = re.compile(
    r"\b(this|the|my|attached|uploaded)\s+(file|csv|json|document|attachment|upload)\b|\[attached file", re.I
)
# "What did I say about X": the question's own words, which the memory query leaves out.
_MEMORY_ASK = (
    r"what did i (say|tell( you)?|mention|write|ask)|did i (say|mention|tell( you)?|talk)|do you remember|"
    r"remind me|i (said|told you|mentioned)|recall"
)
_MEMORY = re.compile(rf"\b({_MEMORY_ASK})\b", re.I)
_MEMORY_PHRASING = re.compile(
    rf"\b({_MEMORY_ASK}|about|regarding|last (week|month|time|year)|yesterday|earlier|before|ago)\b|[?.!]", re.I
)
_WEATHER = re.compile(r"\b(weather|temperature|forecast)\b", re.I)
_WEB = re.compile(r"\b(search( the web| online)?( for)?|look up|google|latest news|news about)\b", re.I)
_MATH = re.compile(
    r"\d\s*(%|percent|[-+*/^x\u00d7\u00f7]|plus|minus|times|divided|multiplied|squared|cubed|to the power|!)|"
    r"\b(square root|cube root|average|mean|median|sum|product|factorial|log)\b( of)?\s*\(?-?\d",
    re.I,
)
_TEXT = re.compile(
    r"\b(count|how many (words|characters|sentences)|word count|keywords?|summari[sz]e|upper ?case|lower ?case|"
    r"title ?case|replace)\b",
    re.I,
)


def fields(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in FIELD.findall(text)}


def _tools_offered(system: str) -> list[str]:
    match = re.search(r"`next_tool_name` \(Literal\[(.*?)\]\)", system)
    return re.findall(r"'([^']+)'", match.group(1)) if match else []


def _text_operation(message: str) -> dict[str, str]:
    lowered = message.lower()
    operation = "stats"
    for word, name in (
        ("keyword", "keywords"),
        ("summar", "summary"),
        ("upper", "upper"),
        ("lower", "lower"),
        ("title", "title"),
        ("replace", "replace"),
    ):
        if word in lowered:
            operation = name
            break
    body = message.split(":", 1)[1].strip() if ":" in message else message
    args = {"operation": operation, "text": body.strip().strip('"“”')}
    if operation == "replace":
        pair = re.search(r"replace\s+[\"“']?(.+?)[\"”']?\s+with\s+[\"“']?(.+?)[\"”']?(?:\s+in\b|:|$)", message, re.I)
        if pair:
            args.update(find=pair.group(1), replace=pair.group(2))
    return args


def route(message: str, tools: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The tool a message asks for, with its arguments; None when no tool fits."""
    rules = [
        ("run_python", _CODE, lambda: {"code": extract_code(message)}),
        ("file_processor", _FILE, lambda: {"filename": _filename(message)}),
        ("memory_search", _MEMORY, lambda: {"query": " ".join(_MEMORY_PHRASING.sub(" ", message).split())}),
        ("weather", _WEATHER, lambda: {"location": _place(message)}),
        ("web_search", _WEB, lambda: {"query": " ".join(_WEB.sub(" ", message).strip(" ?.!").split())}),
        ("calculator", _MATH, lambda: {"expression": message.strip()}),
        ("text_processor", _TEXT, lambda: _text_operation(message)),
    ]
    for tool, pattern, arguments in rules:
        if tool in tools and pattern.search(message):
            return tool, arguments()
    return None


def _filename(message: str) -> str:
    match = re.search(r"[\w.-]+\.(csv|json|txt|md|markdown|pdf|png|jpe?g)\b", message, re.I)
    return match.group(0) if match else ""


def _place(message: str) -> str:
    match = re.search(r"\b(?:in|at|for)\s+([A-Za-zÀ-ÿ .,'-]+?)\s*(?:today|tomorrow|now|right now)?[?.!]*$", message)
    return match.group(1).strip() if match else message.strip(" ?.!")


def _compose(message: str, steps: dict[str, str]) -> str:
    """The answer, from the last observation of a tool (or help when no tool ran)."""
    used = [(steps.get(f"tool_name_{n}"), steps.get(f"observation_{n}", "")) for n in range(20)]
    used = [(name, observation) for name, observation in used if name and name != "finish"]
    if not used:
        if re.match(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", message, re.I):
            return "Hello! " + HELP
        return HELP
    tool, observation = used[-1]
    if tool == "calculator" and " = " in observation and "error" not in observation.lower():
        question, result = observation.rsplit(" = ", 1)
        return f"{question} = **{result}**"
    if tool == "memory_search":
        if observation.startswith("Nothing"):
            return "I couldn't find that in your earlier messages. " + observation
        return observation.replace("From your earlier messages", "Here is what you said before", 1)
    if tool == "run_python":
        return observation.replace("Output:\n", "Output:\n\n```\n", 1) + ("\n```" if "Output:" in observation else "")
    return observation


def respond(system: str, user: str) -> str:
    """What the offline model writes for one DSPy call, in ChatAdapter's field format."""
    inputs = fields(user)
    message = inputs.get("message") or inputs.get("question") or user
    outputs: dict[str, str]
    # The trajectory's steps are field markers inside the trajectory field: they parse as fields.
    if "next_tool_name" in system:
        routed = None if "observation_0" in inputs else route(message, _tools_offered(system))
        if routed:
            tool, args = routed
            outputs = {
                "next_thought": f"This calls for {tool}.",
                "next_tool_name": tool,
                "next_tool_args": json.dumps(args),
            }
        else:
            outputs = {"next_thought": "I have what I need.", "next_tool_name": "finish", "next_tool_args": "{}"}
    else:
        answer = _compose(message, inputs)
        outputs = {"reasoning": "Composed from the tools' observations.", "answer": answer}
    body = "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in outputs.items())
    return body + "[[ ## completed ## ]]"


class OfflineEngine:
    """A DSPy engine that runs the offline model."""

    model = "offline"

    def _text(self, request: Any) -> str:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in (request.system or []))
        user = next((m.text or "" for m in reversed(request.messages) if m.role == "user"), "")
        return respond(system, user)

    def complete(self, request: Any) -> Response:
        return Response(
            id=None,
            model=self.model,
            message=Message.assistant([TextPart(self._text(request))]),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
        )

    def stream(self, request: Any) -> Iterator[Any]:
        from dspy._vendor.lm15.types import StreamDeltaEvent, StreamEndEvent, StreamStartEvent, TextDelta

        text = self._text(request)
        # Only the answer's words are paced, as people watch them arrive; the fields before it
        # and the agent's own steps go at once.
        marker = "[[ ## answer ## ]]"
        head, paced = text.split(marker, 1) if marker in text else (text, "")
        delay = settings.AGENT_OFFLINE_WORD_DELAY_MS / 1000
        yield StreamStartEvent(id=None, model=self.model)
        for piece in re.findall(r"\s*\S+|\s+", head):
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=0))
        if marker in text:
            yield StreamDeltaEvent(delta=TextDelta(text=marker, part_index=0))
            time.sleep(settings.AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS / 1000)
        for piece in re.findall(r"\s*\S+|\s+", paced):
            if delay and piece.strip() and not piece.strip().startswith("[[ ##"):
                time.sleep(delay)
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=0))
        yield StreamEndEvent(finish_reason="stop", usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0))

    def close(self) -> None:
        pass
