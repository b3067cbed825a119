"""First command: install, migrate, make sure a demo user exists, serve on http://127.0.0.1:8000.

    python3 scripts/run.py [ADDRPORT]

Runs on the embedded default (SQLite in var/, in-memory channel layer, Celery tasks in-process)
unless DATABASE_URL / REDIS_URL are set. Daphne serves through ``runserver`` with autoreload.
"""

from __future__ import annotations

import os
import sys

from _venv import ensure, run


def main() -> int:
    ensure("requirements.txt")
    env = {**os.environ}
    env.setdefault("DEBUG", "1")
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    for step in (
        ("python", "manage.py", "migrate", "--noinput"),
        ("python", "manage.py", "ensure_demo_user"),
    ):
        if code := run(*step, env=env):
            return code
    return run("python", "manage.py", "runserver", address, env=env)


if __name__ == "__main__":
    sys.exit(main())
