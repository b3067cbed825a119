"""Second command: lint, format check, type check and the whole pytest suite.

    python3 scripts/test.py [pytest args...]

Uses the embedded default unless DATABASE_URL / REDIS_URL are set (CI runs it both ways).
"""

from __future__ import annotations

import os
import sys

from _venv import ensure, run


def main() -> int:
    ensure("requirements-dev.txt")
    env = {**os.environ}
    # Tests never run with a production secret; settings refuse to start without one otherwise.
    env.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
    # mypy checks what pyproject.toml ([tool.mypy]) names: services, selectors, the agent package.
    for step in (("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)):
        if code := run(*step, env=env):
            print(f"{' '.join(step)} failed", file=sys.stderr)
            return code
    return run("pytest", *sys.argv[1:], env=env)


if __name__ == "__main__":
    sys.exit(main())
