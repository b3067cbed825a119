"""The agent's evaluation set through the real reply path, with its score.

    python3 bench/run.py agent-eval                                  # the offline model
    python3 bench/run.py agent-eval --model openai/gpt-4o-mini --api-key-env OPENAI_API_KEY
    python3 bench/run.py agent-eval --model ollama_chat/llama3.2 --api-base http://127.0.0.1:11434
    python3 bench/run.py agent-eval --scripted-server                # LiteLLM over HTTP to a local
                                                                     # OpenAI-compatible server
                                                                     # answering as the offline model

Prints accuracy, tool-choice accuracy, p50/p95 latency, the offline model's time, tokens and
cost per request, overall and per tool, then every failed case. Runs on a test database of its
own (SQLite, or DATABASE_URL's server with a test_ prefix), which it removes at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings, setup_test_environment, teardown_test_environment  # noqa: E402

from agent.evaluation.runner import load_cases, report, run_all, summary  # noqa: E402
from chatproject.catalog import ModelSpec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a LiteLLM model string (default: the offline model)")
    parser.add_argument("--api-base", default="", help="the model's API base URL")
    parser.add_argument("--api-key-env", default="", help="the environment variable holding its key")
    parser.add_argument("--scripted-server", action="store_true", help="run through a local OpenAI-compatible server")
    parser.add_argument("-k", dest="only", default="", help="only the cases whose id contains this")
    args = parser.parse_args()

    cases = [case for case in load_cases() if args.only in case.id]
    setup_test_environment()
    # A test database of its own: never the one a test run may be using at the same time.
    scratch = tempfile.mkdtemp(prefix="agent-eval-")
    test = connection.settings_dict.setdefault("TEST", {})
    test["NAME"] = (
        str(Path(scratch) / "eval.sqlite3") if connection.vendor == "sqlite" else f"test_agent_eval_{os.getpid()}"
    )
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = None
    try:
        with (
            tempfile.TemporaryDirectory() as media,
            override_settings(
                MEDIA_ROOT=media,
                AGENT_EAGER_IN_BACKGROUND=False,
                AGENT_OFFLINE_WORD_DELAY_MS=0,
                AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS=0,
            ),
        ):
            model_name = None
            if args.scripted_server:
                from agent.tests.fake_openai import OfflineBackedOpenAI

                server = OfflineBackedOpenAI().__enter__()
                os.environ.setdefault("EVAL_API_KEY", "sk-eval")
                args.model, args.api_base, args.api_key_env = "openai/scripted", server.api_base, "EVAL_API_KEY"
            if args.model:
                model_name = "evaluated"
                spec = ModelSpec(model_name, args.model, api_base=args.api_base, api_key_env=args.api_key_env)
                settings.AGENT_MODELS = {**settings.AGENT_MODELS, model_name: spec}
            print(f"model: {args.model or 'offline'}; {len(cases)} cases; database: {connection.vendor}")
            outcomes = run_all(cases, model=model_name)
            print(report(outcomes))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if summary(outcomes)["all"]["accuracy"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
