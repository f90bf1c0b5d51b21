from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_from_url, env_bool, env_int

ROOT = Path(__file__).resolve().parents[1]


def test_env_int_names_the_variable_it_cannot_read(monkeypatch):
    monkeypatch.setenv("LLM_MAX_TOKENS", "lots")
    with pytest.raises(ImproperlyConfigured, match="LLM_MAX_TOKENS"):
        env_int("LLM_MAX_TOKENS", 10)


def test_env_int_enforces_its_minimum(monkeypatch):
    monkeypatch.setenv("LLM_MAX_CONCURRENCY", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("LLM_MAX_CONCURRENCY", 4, minimum=1)


def test_env_bool_reads_common_spellings_and_rejects_others(monkeypatch):
    monkeypatch.setenv("DEBUG", "Yes")
    assert env_bool("DEBUG") is True
    monkeypatch.setenv("DEBUG", "off")
    assert env_bool("DEBUG", default=True) is False
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG")


def test_database_url_is_parsed_into_django_settings():
    entry = database_from_url("DATABASE_URL", "postgres://app:s%40cret@db.internal:6543/tutor")
    assert (entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"], entry["NAME"]) == (
        "app",
        "s@cret",
        "db.internal",
        "6543",
        "tutor",
    )


def test_database_url_with_another_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("DATABASE_URL", "mysql://u:p@h/db")


def test_a_misconfigured_variable_stops_start_up_with_its_name():
    env = {**os.environ, "LLM_TIMEOUT_SECONDS": "soon", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "LLM_TIMEOUT_SECONDS must be a number" in result.stderr


def _laptop_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A laptop's environment: nothing configured, the project's folder of state elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.pop("SECRET_KEY", None)
    return {**env, "VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "config.settings", **extra}


def _processes_naming(path: Path) -> list[str]:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if str(path) in cmdline:
            found.append(cmdline)
    return found


def test_importing_settings_starts_no_server_and_writes_no_file(tmp_path):
    var_dir = tmp_path / "var"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['HOST'], settings.REDIS_URL, settings.CACHES)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_laptop_env(var_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # The settings describe the embedded servers without starting them.
    assert str(var_dir / "pgdata") in result.stdout and "redis://127.0.0.1:" in result.stdout
    assert list(tmp_path.iterdir()) == []
    assert _processes_naming(tmp_path) == []


def test_an_entry_point_starts_the_embedded_redis_settings_name_and_keeps_the_key(tmp_path):
    """What manage.py, asgi, wsgi, the worker and pytest call: here with a database of its
    own (not started), so only the embedded Redis and the secret key are at stake."""
    var_dir = tmp_path / "var"
    code = (
        "import django; django.setup(); from config.embedded import embedded_start; "
        "from django.conf import settings; import redis; embedded_start(); "
        "print(redis.Redis.from_url(settings.REDIS_URL).ping(), settings.SECRET_KEY)"
    )
    env = _laptop_env(var_dir, DATABASE_URL="postgres://nobody@127.0.0.1:9/unused")
    try:
        runs = [
            subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            for _ in range(2)
        ]
        for run in runs:
            assert run.returncode == 0, run.stderr
        first, second = (run.stdout.split() for run in runs)
        assert first[0] == "True" and second[0] == "True"
        # The first process kept its key; the second read the same one.
        assert first[1] == second[1] == (var_dir / "secret_key").read_text()
        assert not (var_dir / "pgdata").exists()
    finally:
        pid_file = var_dir / "redis" / "redis.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)
