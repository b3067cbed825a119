"""Create the project's virtual environment and keep it in step with the pinned requirements.

Shared by ``scripts/run.py`` and ``scripts/test.py`` so both need nothing but Python 3.11+.
A requirements file is reinstalled only when its content changes (a hash stamp in the venv).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CHAT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def _requirements_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for line in path.read_text().splitlines():
        digest.update(line.encode())
        if line.startswith("-r "):
            digest.update(_requirements_digest(path.parent / line[3:].strip()).encode())
    return digest.hexdigest()


def ensure(requirements: str) -> None:
    """Make ``.venv`` exist and hold exactly the pins of ``requirements``."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this script may be started by an older python)
        sys.exit(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    req_path = ROOT / requirements
    stamp = VENV / f".installed-{requirements}"
    wanted = _requirements_digest(req_path)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"Installing {requirements} into {VENV}", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(req_path)],
        check=True,
    )
    stamp.write_text(wanted)


def run(*args: str, env: dict[str, str] | None = None) -> int:
    """Run a command from the venv in the project root; return its exit code."""
    command = [str(BIN / args[0]) if (BIN / args[0]).exists() else args[0], *args[1:]]
    return subprocess.run(command, cwd=ROOT, env=env).returncode
