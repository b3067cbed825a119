"""Runs the evaluation set through the real reply path and scores it.

Each case gets a user of its own (with the earlier messages, other users' messages, thread turns
and attached files it asks for), one user message, and ``agent.services.reply_to_message``: the
same path a message sent over REST or WebSocket takes. A case passes when the first tool used is
the expected one (``none``: no tool) and every fact is in the answer (and no ``absent`` one is).

Needs a database (the test suite's, or the one ``bench/agent_eval.py`` creates).
"""

from __future__ import annotations

import datetime
import json
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from agent import offline
from agent.memory import memory_add
from agent.services import reply_to_message
from messaging.models import ChatMessage
from messaging.services import attachment_create, message_create
from threads.services import preferences_update, thread_create

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
FIXTURES_DIR = HERE / "fixtures"
TOOLS = ("calculator", "text_processor", "file_processor", "memory_search", "run_python", "web_search", "weather")


@dataclass(frozen=True)
class Case:
    id: str
    message: str
    tool: str
    # Every fact must be in the answer; a fact given as a list passes with any one of its items.
    facts: list[str | list[str]]
    absent: list[str] = field(default_factory=list)
    # Earlier messages of this user in other threads: {thread, text, days_ago}.
    memories: list[dict[str, Any]] = field(default_factory=list)
    # Another user's messages: never to be seen in this user's answer.
    others: list[str] = field(default_factory=list)
    # Earlier turns in this thread: [role, text].
    history: list[list[str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Tools that reach out: "on" starts a local stand-in with the fixtures' answers; else off.
    web: str = "off"
    weather: str = "off"
    instructions: str = ""
    needs: str = ""


@dataclass
class Outcome:
    case: Case
    answer: str = ""
    tools: list[str] = field(default_factory=list)
    tool_ok: bool = False
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model_ms: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return not self.skipped and self.tool_ok and not self.missing


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every YAML file in ``directory``; ValueError naming a malformed one."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            try:
                case = Case(**raw)
            except TypeError as exc:
                raise ValueError(f"{path.name}: case {raw.get('id')!r}: {exc}") from None
            if case.tool not in (*TOOLS, "none"):
                raise ValueError(f"{path.name}: case {case.id!r}: unknown tool {case.tool!r}")
            cases.append(case)
    ids = [case.id for case in cases]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return cases


def _plain(text: str) -> str:
    return re.sub(r"[*`]", "", text).casefold()


def check(case: Case, answer: str) -> list[str]:
    """The facts the answer misses (and the absent ones it contains, prefixed 'not ')."""
    plain = _plain(answer)
    missing = []
    for fact in case.facts:
        options = fact if isinstance(fact, list) else [fact]
        if not any(_plain(str(option)) in plain for option in options):
            missing.append(" | ".join(str(option) for option in options))
    missing += [f"not {word}" for word in case.absent if _plain(word) in plain]
    return missing


def _fixture_json(name: str) -> Any:
    return json.loads((FIXTURES_DIR / name).read_text())


@contextmanager
def _outside_services(case: Case) -> Iterator[None]:
    """Web search and weather as the case wants them: off, or local stand-ins answering from fixtures."""
    from agent.tests.local_http import LocalServer, Reply, Request

    with ExitStack() as stack:
        overrides: dict[str, Any] = {"WEB_SEARCH_PROVIDER": "off", "SERPAPI_API_KEY": "", "OPENWEATHER_API_KEY": ""}
        if case.weather == "on":
            places = _fixture_json("weather.json")

            def weather(request: Request) -> Reply:
                found = places.get(request.query.get("q", "").split(",")[0].strip().casefold())
                return Reply.json(found) if found else Reply.json({"cod": "404", "message": "city not found"}, 404)

            server = stack.enter_context(LocalServer(weather))
            overrides.update(OPENWEATHER_API_KEY="eval-key", OPENWEATHER_URL=server.url)
        if case.web == "on":
            answers = _fixture_json("web.json")

            def web(request: Request) -> Reply:
                query = request.query.get("q", "").casefold()
                found: dict[str, Any] = next((answer for key, answer in answers.items() if key in query), {})
                return Reply.json(found)

            server = stack.enter_context(LocalServer(web))
            overrides.update(WEB_SEARCH_PROVIDER="duckduckgo", DUCKDUCKGO_URL=server.url)
        stack.enter_context(override_settings(**overrides))
        yield


def _user(prefix: str) -> Any:
    return get_user_model().objects.create(username=f"{prefix}-{uuid.uuid4().hex[:12]}")


def _remember(user: Any, title: str, text: str, days_ago: float = 1) -> None:
    thread = thread_create(owner=user, title=title)
    message = message_create(thread=thread, role=ChatMessage.Role.USER, sender=user, content=text)
    ChatMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - datetime.timedelta(days=days_ago))
    memory_add(ChatMessage.objects.get(pk=message.pk))


def run_case(case: Case, *, model: str | None = None, sandbox_active: bool = True) -> Outcome:
    """Set the case up for a new user, send its message and score the reply."""
    if case.needs == "sandbox" and not sandbox_active:
        return Outcome(case=case, skipped="no code sandbox on this machine")
    user = _user("eval")
    for memory in case.memories:
        _remember(user, memory.get("thread", "Earlier"), memory["text"], memory.get("days_ago", 1))
    if case.others:
        someone = _user("eval-other")
        for text in case.others:
            _remember(someone, "Private", text)
    if case.instructions:
        preferences_update(user=user, instructions=case.instructions)
    thread = thread_create(owner=user, title="Evaluation", model=model)
    for role, text in case.history:
        message_create(thread=thread, role=role, sender=user if role == "user" else None, content=text)
    for name in case.files:
        upload = message_create(thread=thread, role="user", sender=user, content="", type=ChatMessage.Type.FILE)
        attachment_create(message=upload, filename=name, data=(FIXTURES_DIR / name).read_bytes())
    message = message_create(thread=thread, role=ChatMessage.Role.USER, sender=user, content=case.message)
    offline.MODEL_SECONDS.clear()
    with _outside_services(case):
        started = time.perf_counter()
        reply = reply_to_message(message.pk)
        seconds = time.perf_counter() - started
    outcome = Outcome(case=case, seconds=seconds, model_ms=sum(offline.MODEL_SECONDS) * 1000)
    if reply is None:
        outcome.missing = ["(no reply)"]
        return outcome
    trajectory = reply.metadata.get("trajectory") or {}
    outcome.tools = [trajectory[f"tool_name_{n}"] for n in range(20) if f"tool_name_{n}" in trajectory]
    outcome.tools = [name for name in outcome.tools if name != "finish"]
    outcome.tool_ok = outcome.tools[:1] == [case.tool] if case.tool != "none" else not outcome.tools
    outcome.answer = reply.content
    outcome.missing = check(case, reply.content)
    outcome.usage = {**(reply.metadata.get("usage") or {}), "cost_usd": reply.metadata.get("cost_usd") or 0.0}
    return outcome


def run_all(cases: list[Case], *, model: str | None = None) -> list[Outcome]:
    from agent.sandbox import sandbox_status

    active = sandbox_status().active
    return [run_case(case, model=model, sandbox_active=active) for case in cases]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Accuracy, tool-choice accuracy, latency, model time, tokens and cost: overall and per tool."""

    def block(group: list[Outcome]) -> dict[str, Any]:
        ran = [o for o in group if not o.skipped]
        count = len(ran) or 1
        return {
            "cases": len(ran),
            "skipped": len(group) - len(ran),
            "accuracy": sum(o.passed for o in ran) / count,
            "tool_accuracy": sum(o.tool_ok for o in ran) / count,
            "p50_ms": percentile([o.seconds * 1000 for o in ran], 0.5),
            "p95_ms": percentile([o.seconds * 1000 for o in ran], 0.95),
            "max_model_ms": max((o.model_ms for o in ran), default=0.0),
            "tokens_per_request": statistics.fmean(
                [(o.usage.get("prompt_tokens") or 0) + o.usage.get("completion_tokens", 0) for o in ran] or [0]
            ),
            "cost_per_request": statistics.fmean([o.usage.get("cost_usd", 0.0) for o in ran] or [0.0]),
        }

    tools = sorted({o.case.tool for o in outcomes})
    return {"all": block(outcomes), **{tool: block([o for o in outcomes if o.case.tool == tool]) for tool in tools}}


def report(outcomes: list[Outcome]) -> str:
    """The summary as a table, then each failed case with what it missed."""
    lines = [
        f"{'tool':<16} {'cases':>5} {'skip':>4} {'accuracy':>8} {'tool acc':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'model ms':>8} {'tokens':>7} {'cost $':>8}"
    ]
    for name, row in summary(outcomes).items():
        lines.append(
            f"{name:<16} {row['cases']:>5} {row['skipped']:>4} {row['accuracy']:>8.1%} {row['tool_accuracy']:>8.1%} "
            f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['max_model_ms']:>8.1f} "
            f"{row['tokens_per_request']:>7.0f} {row['cost_per_request']:>8.5f}"
        )
    for outcome in outcomes:
        if outcome.skipped:
            lines.append(f"SKIPPED {outcome.case.id}: {outcome.skipped}")
        elif not outcome.passed:
            lines.append(
                f"FAILED {outcome.case.id}: {outcome.case.message!r} -> tools {outcome.tools} "
                f"(expected {outcome.case.tool}); missing {outcome.missing}; answer {outcome.answer[:160]!r}"
            )
    return "\n".join(lines)
