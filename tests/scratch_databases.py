"""New, empty databases on the test run's PostgreSQL server, for tests that need a
database of their own (an unmigrated one, one made by an earlier release)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from django.db import connections


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[dict]:
    """A new database named ``<prefix>_<random>``, as psycopg connection keywords;
    dropped (with its connections) at the end."""
    server = dict(connections["default"].settings_dict)
    conninfo = {
        "dbname": "postgres",
        "user": server["USER"],
        "password": server["PASSWORD"],
        "host": server["HOST"],
        "port": server["PORT"] or None,
    }
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**conninfo, "dbname": name}
    finally:
        with psycopg.connect(**conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
