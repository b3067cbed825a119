"""A scripted OpenAI-compatible chat server on 127.0.0.1 for the real-model path.

It answers ``POST /v1/chat/completions`` the way a model following DSPy's ChatAdapter would:
the ReAct steps from ``steps`` in order (one per step request), then ``answer`` for the final
call. Streamed requests (``"stream": true``) get server-sent events, a few characters each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from .local_http import LocalServer, Reply, Request

# What every response of FakeOpenAI reports it used.
USAGE = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}


def fields(**values: str) -> str:
    return "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in values.items()) + "[[ ## completed ## ]]"


def step(tool: str, args: dict[str, Any], thought: str = "") -> str:
    return fields(next_thought=thought or f"Use {tool}.", next_tool_name=tool, next_tool_args=json.dumps(args))


def finish() -> str:
    return step("finish", {}, "I can answer now.")


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": USAGE,
    }


def sse(model: str, text: str, piece: int, pause: float, usage: dict[str, int] = USAGE) -> Iterator[bytes]:
    def event(delta: dict[str, str], finish_reason: str | None) -> bytes:
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield event({"role": "assistant", "content": ""}, None)
    for start in range(0, len(text), piece):
        time.sleep(pause)
        yield event({"content": text[start : start + piece]}, None)
    yield event({}, "stop")
    # The usage block OpenAI sends last when asked (stream_options.include_usage).
    final = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": []}
    yield f"data: {json.dumps({**final, 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


class FakeOpenAI(LocalServer):
    def __init__(
        self, steps: list[str], answer: str, *, piece: int = 6, pause: float = 0.0, respond_as: str | None = None
    ) -> None:
        """``respond_as``: the model name the responses carry (default: the one asked for)."""
        self.respond_as = respond_as
        self.steps = list(steps)
        self.answer = answer
        self.piece, self.pause = piece, pause
        super().__init__(self.reply)

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def reply(self, request: Request) -> Reply:
        if request.path != "/v1/chat/completions":
            return Reply.json({"error": {"message": "not found"}}, status=404)
        body = request.json()
        system = body["messages"][0]["content"]
        is_react_step = "next_tool_name" in system
        text = self.answer if not is_react_step else self.steps.pop(0) if self.steps else finish()
        model = self.respond_as or body["model"]
        if body.get("stream"):
            return Reply(body=sse(model, text, self.piece, self.pause), headers={"Content-Type": "text/event-stream"})
        return Reply.json(completion(model, text))


class OfflineBackedOpenAI(LocalServer):
    """An OpenAI-compatible server whose "model" is the offline model's ``respond``: the whole
    evaluation set runs through dspy.LM, LiteLLM and HTTP with answers that follow the prompt.

    Reports usage (words as tokens) so the runner's token counts are exercised.
    """

    def __init__(self) -> None:
        super().__init__(self.reply)

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def reply(self, request: Request) -> Reply:
        from agent.offline import respond

        if request.path != "/v1/chat/completions":
            return Reply.json({"error": {"message": "not found"}}, status=404)
        body = request.json()
        messages = body["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        text = respond(system, user)
        usage = {
            "prompt_tokens": len(system.split()) + len(user.split()),
            "completion_tokens": len(text.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            events = sse(body["model"], text, 40, 0.0, usage)
            return Reply(body=events, headers={"Content-Type": "text/event-stream"})
        return Reply.json({**completion(body["model"], text), "usage": usage})
