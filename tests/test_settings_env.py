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
