"""Settings of a Celery worker that a test runs as a process of its own (``workers.py``).

The test settings, pointed at the test database pytest-django created, with the LLM
server, lease and broker timings the test passes in the environment. The embedded
PostgreSQL and Redis are found as every process finds them (``config/embedded.py``).
"""

import os

from config.settings_test import *  # noqa: F403
from config.settings_test import DATABASES

DATABASES["default"]["NAME"] = os.environ["TEST_DATABASE_NAME"]
LLM_BASE_URL = os.environ.get("TEST_LLM_BASE_URL", "")
LLM_MODEL = os.environ.get("TEST_LLM_MODEL", "llm-test-model")
LLM_API_KEY = "test-key"
LLM_RETRY_BACKOFF_SECONDS = 0.01
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": float(os.environ.get("TEST_VISIBILITY_TIMEOUT", "3600"))
}
