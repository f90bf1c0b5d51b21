"""The settings the app containers get from the image, .env and compose, loaded for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SHOW_SETTINGS = """
import json, logging
import django
django.setup()
from django.conf import settings
logging.getLogger("tutoring.deploy_test").warning("hello", extra={"answer": 42})
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "database_host": settings.DATABASES["default"]["HOST"],
    "REDIS_URL": settings.REDIS_URL,
    "LLM_BASE_URL": settings.LLM_BASE_URL,
    "staticfiles": settings.STORAGES["staticfiles"]["BACKEND"],
    "media": settings.STORAGES["default"]["BACKEND"],
    "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    "middleware": settings.MIDDLEWARE[:2],
    "hijack": settings.CELERY_WORKER_HIJACK_ROOT_LOGGER,
    "EMAIL_BACKEND": settings.EMAIL_BACKEND,
}))
"""


def _container_env(env: dict[str, str], tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A container's environment, runnable here: this interpreter, a scratch metrics dir.

    The database and Redis URLs keep their compose host names, which do not resolve here:
    loading settings and running checks must not connect to anything.
    """
    result = {**env, **overrides}
    result["PATH"] = os.environ["PATH"]
    result["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    result["HOME"] = str(tmp_path)
    for name in ("DJANGO_ALLOW_ASYNC_UNSAFE", "PYTHONPATH"):
        result.pop(name, None)
    return result


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def web_env(production_env, tmp_path_factory) -> dict[str, str]:
    return _container_env(production_env["web"], tmp_path_factory.mktemp("metrics"))


def test_the_web_container_loads_production_settings(web_env):
    result = subprocess.run(
        [sys.executable, "-c", _SHOW_SETTINGS],
        cwd=ROOT,
        env=web_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown == {
        "DEBUG": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "database_host": "postgres",
        "REDIS_URL": "redis://redis:6379/0",
        "LLM_BASE_URL": "http://vllm:8000/v1",
        "staticfiles": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "media": "django.core.files.storage.FileSystemStorage",
        "MEDIA_ROOT": "/data/media",
        "middleware": [
            "config.logging.RequestIdMiddleware",
            "config.metrics.RequestMetricsMiddleware",
        ],
        "hijack": False,
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }
    # Logs are one JSON object per line.
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["logger"] == "tutoring.deploy_test"
    assert (line["level"], line["message"], line["answer"]) == ("WARNING", "hello", 42)


def test_the_production_settings_pass_the_deploy_checks(web_env):
    result = _manage(["check", "--deploy"], web_env)
    assert result.returncode == 0, result.stderr
    issues = [line for line in result.stderr.splitlines() if line.startswith("?: (")]
    # The only warning left is HSTS preloading: .env.example leaves it off on purpose,
    # because joining browsers' preload lists is the domain owner's choice and hard to
    # undo. With it on, nothing is left (next test).
    assert [issue.split(")")[0] + ")" for issue in issues] == ["?: (security.W021)"]


def test_with_hsts_preloading_on_no_deploy_warning_is_left(web_env):
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {**web_env, "SECURE_HSTS_PRELOAD": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_an_unset_secret_key_stops_a_production_container(web_env):
    env = dict(web_env)
    env.pop("SECRET_KEY")
    result = _manage(["check"], env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_an_s3_bucket_moves_uploads_to_s3(web_env):
    env = {**web_env, "MEDIA_S3_BUCKET": "tutoring-media", "MEDIA_S3_REGION": "eu-west-1"}
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__name__, s.bucket_name, s.querystring_auth, s.file_overwrite)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["S3Storage", "tutoring-media", "True", "False"]


def test_email_url_configures_smtp(web_env):
    env = {**web_env, "EMAIL_URL": "smtps://mailer:p%40ss@mail.example.org"}
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, "
        "s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_SSL, s.EMAIL_USE_TLS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "mail.example.org",
        "465",
        "mailer",
        "p@ss",
        "True",
        "False",
    ]


@pytest.mark.django_db
def test_probes_over_plain_http_are_not_redirected_but_pages_are(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics").status_code == 401  # asks for its token, not redirected
    assert client.get("/healthz").status_code in {200, 503}  # up or down, never redirected
    page = client.get("/login/")
    assert page.status_code == 301
    assert page["Location"].startswith("https://")
