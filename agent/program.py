"""The DSPy program: a ReAct agent over the conversation, its memories and the new message.

``dspy`` is imported here only, on first use (it takes about 0.4 s), never at Django start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from django.conf import settings

from chatproject.catalog import ModelSpec, default_spec

# DSPy (like LiteLLM) fetches a model price list from GitHub on first use unless told to use the
# copy it ships: the server makes no request its operator did not configure.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class AgentError(Exception):
    """The model failed (provider error, timeout, unreadable output); the message says how."""


@cache
def _signature() -> Any:
    import dspy

    class ChatReply(dspy.Signature):  # type: ignore[misc]  # dspy ships no types: Signature is Any
        """You are a helpful assistant in a chat application. Use the tools when they help (arithmetic,
        the user's earlier messages, their attached files, running Python, text work, the web, the
        weather), then answer the user's message in Markdown, briefly and accurately."""

        custom_instructions: str = dspy.InputField(
            desc="the user's custom instructions for how to answer (tone, language, format): follow them"
        )
        history: str = dspy.InputField(desc="recent turns of this conversation, oldest first")
        memories: str = dspy.InputField(desc="possibly relevant things the user said in other conversations")
        message: str = dspy.InputField(desc="the user's new message")
        answer: str = dspy.OutputField(desc="the reply to the user, in Markdown")

    return ChatReply


def warm_up() -> None:
    """Import DSPy and run the offline model once, so a process's first reply is not slow."""
    from .tools import ToolContext, build_tools

    if default_spec().is_offline:
        for _ in run_program(tools=build_tools(ToolContext()), history="", memories="", message="2 plus 2"):
            pass
    else:
        _signature()


def build_lm(spec: ModelSpec | None = None) -> Any:
    """A model (the default when none is given): the offline one, or a LiteLLM model through ``dspy.LM``."""
    import dspy

    spec = spec or default_spec()
    if spec.is_offline:
        from .offline import OfflineEngine

        return dspy.LM("offline/offline", engine=OfflineEngine(), cache=False, num_retries=0)
    kwargs: dict[str, Any] = {
        "cache": False,
        "num_retries": settings.AGENT_MAX_RETRIES,
        "timeout": settings.AGENT_TIMEOUT_SECONDS,
    }
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    # The provider keys of the single-model configuration are settings (tests change them there).
    key = spec.api_key() or {
        "OPENAI_API_KEY": settings.OPENAI_API_KEY,
        "ANTHROPIC_API_KEY": settings.ANTHROPIC_API_KEY,
    }.get(spec.api_key_env, "")
    if key:
        kwargs["api_key"] = key
    return dspy.LM(spec.model, **kwargs)


class _StatusProvider:
    """Tool steps as JSON status messages, so the runner can forward them as ``stream_status``."""

    def __init__(self) -> None:
        self.tool: str | None = None

    def make(self) -> Any:
        import dspy

        outer = self

        class Provider(dspy.streaming.StatusMessageProvider):  # type: ignore[misc]  # dspy ships no types
            def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
                outer.tool = instance.name
                arguments = inputs.get("kwargs", inputs)
                shown = {key: _short(value) for key, value in dict(arguments or {}).items()}
                return json.dumps({"step": "tool_start", "tool": instance.name, "input": shown}, default=str)

            def tool_end_status_message(self, outputs: Any) -> str:
                return json.dumps({"step": "tool_end", "tool": outer.tool, "output": _short(outputs)})

            def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> None:
                return None

            def lm_end_status_message(self, outputs: Any) -> None:
                return None

            def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> None:
                return None

            def module_end_status_message(self, outputs: Any) -> None:
                return None

        return Provider()


def _short(value: Any, limit: int = 500) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def run_program(
    *,
    tools: dict[str, Callable[..., str]],
    history: str,
    memories: str,
    message: str,
    instructions: str = "",
    model: ModelSpec | None = None,
) -> Iterator[tuple[str, Any]]:
    """Run the agent; yields ("delta", text), ("status", dict), ("result", prediction) and last
    ("usage", {"input_tokens", "output_tokens", "cost"}) summed over the model's calls."""
    import dspy

    model = model or default_spec()
    try:
        lm = build_lm(model)
    except Exception as exc:
        raise AgentError(f"The model {model.name!r} cannot be used: {type(exc).__name__}: {exc}") from exc
    react = dspy.ReAct(
        _signature(),
        tools=[dspy.Tool(function, name=name) for name, function in tools.items()],
        max_iters=settings.AGENT_MAX_ITERS,
    )
    status = _StatusProvider()
    streaming = dspy.streamify(
        react,
        status_message_provider=status.make(),
        stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
        async_streaming=False,
    )
    try:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            for item in streaming(
                custom_instructions=instructions or "(none)", history=history, memories=memories, message=message
            ):
                if isinstance(item, dspy.streaming.StreamResponse):
                    if item.chunk:
                        yield "delta", item.chunk
                elif isinstance(item, dspy.streaming.StatusMessage):
                    try:
                        yield "status", json.loads(item.message)
                    except ValueError:
                        yield "status", {"step": "info", "message": item.message}
                elif isinstance(item, dspy.Prediction):
                    yield "result", item
    except AgentError:
        raise
    except Exception as exc:
        raise AgentError(f"The model failed: {type(exc).__name__}: {exc}") from exc
    yield "usage", _usage(lm)


def _usage(lm: Any) -> dict[str, Any]:
    """Tokens and cost of a run, from the LM's history of calls (zero for the offline model)."""
    totals: dict[str, Any] = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
    for call in getattr(lm, "history", None) or []:
        usage = call.get("usage") or {}
        totals["calls"] += 1
        totals["input_tokens"] += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        totals["output_tokens"] += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        totals["cost"] += float(call.get("cost") or 0.0)
    return totals
