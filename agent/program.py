"""The DSPy program: a ReAct agent over the conversation, its memories and the new message.

``dspy`` is imported here only, on first use (it takes about 0.4 s), never at Django start-up.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from functools import cache, lru_cache
from typing import Any

from django.conf import settings

from chatproject.catalog import ModelSpec, default_spec


class AgentError(Exception):
    """The model failed (provider error, timeout, unreadable output); the message says how.

    ``usage`` holds what the calls made before the failure cost (see ``_usage``), when known.
    """

    usage: dict[str, Any] | None = None


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
        self.started = 0.0

    def make(self) -> Any:
        import dspy

        outer = self

        class Provider(dspy.streaming.StatusMessageProvider):  # type: ignore[misc]  # dspy ships no types
            def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
                outer.tool, outer.started = instance.name, time.monotonic()
                arguments = inputs.get("kwargs", inputs)
                shown = {key: _short(value) for key, value in dict(arguments or {}).items()}
                return json.dumps({"step": "tool_start", "tool": instance.name, "input": shown}, default=str)

            def tool_end_status_message(self, outputs: Any) -> str:
                # DSPy passes no outputs when the tool raised (bad arguments, a bug): our tools
                # return a string, even for bad input, whenever they ran.
                took = round((time.monotonic() - outer.started) * 1000)
                ok = outputs is not None
                return json.dumps(
                    {"step": "tool_end", "tool": outer.tool, "output": _short(outputs), "duration_ms": took, "ok": ok}
                )

            def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> None:
                return None

            def lm_end_status_message(self, outputs: Any) -> None:
                return None

            def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> None:
                return None

            def module_end_status_message(self, outputs: Any) -> None:
                return None

        return Provider()


# DSPy runs a streamed program on a worker thread under one process-wide anyio CapacityLimiter
# (``async_max_workers``, 8 by default), shared by the event loops of all concurrent replies. A
# reply that has to wait for it is woken by another reply's loop, which asyncio does not allow: it
# hung for good once more than 8 replies ran in one process (a thread-pool worker, the embedded
# default at 40 at once). Our own pools bound how many replies run at once; the limiter must never
# bind first, so each reply raises it far above any pool we run.
DSPY_ASYNC_THREADS = 1024

# The setting (a DSPy context override, per reply) that holds the reply's own tool functions.
# DSPy carries its context overrides to the threads the program runs on, as it does the model.
REPLY_TOOLS = "chat_reply_tools"
# Programs built, by what they are built from (see ``_program_key``): a handful per process.
_programs: dict[Hashable, Any] = {}
_programs_lock = threading.Lock()
MAX_PROGRAMS = 32


class _NoHistory(list[Any]):
    """A module's call history that keeps nothing. DSPy appends every call (its whole prompt) to
    the history of each module that made it, up to 10,000: a program shared by every reply of a
    process would hold that many of its users' prompts. The model's own history (a fresh ``dspy.LM``
    per reply) still records the calls, for ``_usage``."""

    def append(self, item: Any) -> None:
        return None


def _dispatcher(name: str) -> Callable[..., str]:
    """The function a cached ``dspy.Tool`` calls: the tool ``name`` of the reply being run, read
    from the reply's DSPy context (never a process-wide one: outside a reply it refuses)."""
    import dspy

    def call(**kwargs: Any) -> str:
        tools = dspy.settings.get(REPLY_TOOLS)
        if not tools or name not in tools:
            raise RuntimeError(f"The tool {name!r} was called outside a reply")
        result: str = tools[name](**kwargs)
        return result

    return call


def _program_key(model: ModelSpec, tools: dict[str, Callable[..., str]]) -> Hashable:
    """What a program is built from: the model, AGENT_MAX_ITERS, and each tool's name and code
    and docstring (what the model reads of it; the same for every reply of one registry), never
    the conversation the tools are bound to."""
    shapes = tuple((name, getattr(fn, "__code__", fn), fn.__doc__) for name, fn in tools.items())
    return (model, settings.AGENT_MAX_ITERS, shapes)


def program_for(model: ModelSpec, tools: dict[str, Callable[..., str]]) -> Any:
    """The ``dspy.ReAct`` program for this model and these tools, built once per process.

    Building it (a signature per step, each tool's JSON schema) cost about 5 ms of CPU, a tenth of
    a reply's (``bench/run.py reply-cost``). It holds nothing of a reply: its tools call the reply's own
    functions through ``REPLY_TOOLS`` (see ``run_program``), its modules keep no call history,
    and the model is given per reply. Safe to share between threads: DSPy keeps a run's state in
    the run (its trajectory) and in per-thread settings.
    """
    key = _program_key(model, tools)
    with _programs_lock:
        program = _programs.get(key)
        if program is None:
            program = _build_program(tools)
            if len(_programs) >= MAX_PROGRAMS:
                _programs.clear()
            _programs[key] = program
        return program


def _build_program(tools: dict[str, Callable[..., str]]) -> Any:
    import dspy

    shared = []
    for name, function in tools.items():
        # The schema is read from the reply's function (its signature and docstring), then the
        # tool calls whichever reply runs it: this first reply's function is not kept.
        tool = dspy.Tool(function, name=name)
        tool.func = _dispatcher(name)
        shared.append(tool)
    react = dspy.ReAct(_signature(), tools=shared, max_iters=settings.AGENT_MAX_ITERS)
    for module in [react, *(sub for _, sub in react.named_sub_modules())]:
        module.history = _NoHistory()
    return react


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
    ("usage", ...) summed over the model's calls (see ``_usage``)."""
    import dspy

    model = model or default_spec()
    try:
        lm = build_lm(model)
    except Exception as exc:
        raise AgentError(f"The model {model.name!r} cannot be used: {type(exc).__name__}: {exc}") from exc
    react = program_for(model, tools)
    # Per reply: the stream listener and the status provider keep the run's state.
    status = _StatusProvider()
    streaming = dspy.streamify(
        react,
        status_message_provider=status.make(),
        stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
        async_streaming=True,
    )
    try:
        with dspy.context(
            lm=lm, adapter=dspy.ChatAdapter(), async_max_workers=DSPY_ASYNC_THREADS, **{REPLY_TOOLS: tools}
        ):
            stream = streaming(
                custom_instructions=instructions or "(none)", history=history, memories=memories, message=message
            )
            for ready in _ready_batches(stream):
                pieces: list[str] = []
                for item in ready:
                    if isinstance(item, dspy.streaming.StreamResponse):
                        if item.chunk:
                            pieces.append(item.chunk)
                        continue
                    if pieces:
                        yield "delta", "".join(pieces)
                        pieces = []
                    if isinstance(item, dspy.streaming.StatusMessage):
                        try:
                            yield "status", json.loads(item.message)
                        except ValueError:
                            yield "status", {"step": "info", "message": item.message}
                    elif isinstance(item, dspy.Prediction):
                        yield "result", item
                if pieces:
                    yield "delta", "".join(pieces)
    except AgentError as error:
        error.usage = _usage(lm, model)
        raise
    except Exception as exc:
        failure = AgentError(f"The model failed: {type(exc).__name__}: {exc}")
        failure.usage = _usage(lm, model)
        raise failure from exc
    yield "usage", _usage(lm, model)


_DONE = object()


def _ready_batches(stream: AsyncIterator[Any]) -> Iterator[list[Any]]:
    """The items of DSPy's async stream, in order, as lists of those ready at once.

    DSPy's own sync bridge hands items over one at a time. A reply that falls behind (a busy
    worker: its chunk write and publish take longer than the model's pause) then sends every
    piece as a chunk of its own and falls further behind. Taking everything that is ready lets the
    caller send what piled up as one piece: coalescing that costs nothing while it keeps up, and
    grows with the lag. The stream runs on a thread of its own with the caller's context (DSPy's
    settings are context variables), as in DSPy's bridge.
    """
    ready: queue.SimpleQueue[Any] = queue.SimpleQueue()

    async def pump() -> None:
        try:
            async for item in stream:
                ready.put(item)
        except BaseException as exc:  # handed to the reading thread, which raises it
            ready.put(_Failure(exc))
        finally:
            ready.put(_DONE)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(asyncio.run, pump()), name="reply-stream", daemon=True).start()
    while True:
        batch = _take_ready(ready)
        for position, item in enumerate(batch):
            if item is _DONE or isinstance(item, _Failure):
                if position:
                    yield batch[:position]
                if isinstance(item, _Failure):
                    raise item.error
                return
        yield batch


def _take_ready(ready: queue.SimpleQueue[Any]) -> list[Any]:
    """The next item (waiting for it) and every item already behind it."""
    batch = [ready.get()]
    while True:
        try:
            batch.append(ready.get_nowait())
        except queue.Empty:
            return batch


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _usage(lm: Any, model: ModelSpec) -> dict[str, Any]:
    """Tokens and cost of a run from the LM's history of calls: ``{"calls", "prompt_tokens",
    "completion_tokens", "counted", "cost_usd"}``.

    Tokens are the provider's when it reports them; a call reporting none (the offline model, some
    local servers) is counted (cl100k_base over its prompt and output; ``counted`` is then true).
    ``cost_usd`` is the call's cost as DSPy priced it when it did, else the price of the model that
    answered in LiteLLM's price list (see ``_price``); None when no call's price is known.
    """
    from messaging.metrics import count_tokens

    totals: dict[str, Any] = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "counted": False}
    cost: float | None = None
    history = getattr(lm, "history", None) or []
    # A streamed response comes back named after the model asked for, not the one that answered
    # (DSPy rebuilds it from the chunks): price it as the run's other calls were priced.
    priced_as = next((call.get("response_model") for call in history if call.get("cost") is not None), None)
    for call in history:
        usage = call.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        if not prompt and not completion:
            prompt = sum(count_tokens(_text_of(m.get("content"))) for m in call.get("messages") or [])
            completion = sum(count_tokens(_text_of(output)) for output in call.get("outputs") or [])
            totals["counted"] = True
        totals["calls"] += 1
        totals["prompt_tokens"] += prompt
        totals["completion_tokens"] += completion
        if not model.is_offline:
            call_cost = call.get("cost")
            if call_cost is None:
                asked = str(call.get("model") or "")
                provider = asked.split("/", 1)[0] if "/" in asked else "openai"
                answered_by = priced_as or call.get("response_model") or asked.split("/", 1)[-1]
                call_cost = _price(provider, answered_by, prompt, completion)
            if call_cost is not None:
                cost = (cost or 0.0) + float(call_cost)
    return {**totals, "cost_usd": cost}


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("text") or "")
    if isinstance(value, list):
        return "".join(_text_of(part) for part in value)
    return "" if value is None else str(value)


def _price(provider: str, model_name: Any, prompt: int, completion: int) -> float | None:
    """The price of the tokens in LiteLLM's price list; None when the model is not listed."""
    if not model_name:
        return None
    per_prompt, per_completion = _rates(provider, str(model_name))
    if per_prompt is None or per_completion is None:
        return None
    cost: float = prompt * per_prompt + completion * per_completion
    return cost


@lru_cache(maxsize=256)
def _rates(provider: str, model_name: str) -> tuple[float | None, float | None]:
    """A model's price per prompt and per completion token, read once per process.

    Read from the copy of LiteLLM's list that DSPy ships and prices its own calls with (local
    only, LITELLM_LOCAL_MODEL_COST_MAP being set): importing LiteLLM itself for this would cost
    a reply several seconds. A model the list lacks is looked for among every entry's aliases, a
    few milliseconds of CPU that each reply paid again.
    """
    try:
        from dspy.clients.model_metadata import model_info, rate

        info = model_info(provider, model_name)
        return rate(info, "input_cost_per_token"), rate(info, "output_cost_per_token")
    except Exception:  # DSPy's price table moved: no price rather than a failed reply
        return None, None
