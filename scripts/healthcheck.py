"""The container's health check: exit 0 when the web server answers /healthz with 200.

    python scripts/healthcheck.py [PORT]

Standard library only and no Django start-up, so it is cheap to run every 30 s. It sends a Host
header the server accepts (the first concrete name of ALLOWED_HOSTS): Django answers any other
with 400, and "127.0.0.1" is not in every deployment's list.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def allowed_host(value: str) -> str:
    """A name Django's ALLOWED_HOSTS check lets through: "*" and ".example.com" become concrete."""
    for entry in (part.strip() for part in value.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 8000
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": allowed_host(os.environ.get("ALLOWED_HOSTS", ""))}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
