"""Test settings: the same real PostgreSQL and Redis, isolated where they are shared."""

from config.env import env_bool
from config.settings import *  # noqa: F403
from config.settings import DATABASES, REDIS_URL

# Tests open connections from many threads (ASGI and WSGI test servers, in-process
# workers) and hold some to the end of a test: one connection each, as before, unless
# DB_POOL=1 asks for the production pool.
if not env_bool("DB_POOL", default=False):
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)

# A Redis database of its own, so a developer's running worker never takes test tasks.
REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/15"
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LLM_BASE_URL = ""
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
