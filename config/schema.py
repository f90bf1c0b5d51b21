"""Management commands that read or write the database bring its schema up to date first.

``manage.py eval_grading`` right after a fresh checkout (or after ``make test``, which
migrates only its own test database) would otherwise stop on ``relation ... does not
exist``. A command calls ``schema_migrate_pending`` before its first query: pending
migrations are applied, with one line on stderr saying so (stdout stays the command's own,
JSON included).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def schema_pending_migrations(database: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names (app.migration) of the migrations not yet applied to ``database``."""
    executor = MigrationExecutor(connections[database])
    targets = executor.loader.graph.leaf_nodes()
    return [f"{m.app_label}.{m.name}" for m, _ in executor.migration_plan(targets)]


def schema_migrate_pending(command: BaseCommand, database: str = DEFAULT_DB_ALIAS) -> int:
    """Apply pending migrations before ``command`` runs; returns how many were applied."""
    pending = schema_pending_migrations(database)
    if pending:
        command.stderr.write(
            f"The database schema was not up to date: applying {len(pending)} migrations "
            "first (manage.py migrate)."
        )
        call_command("migrate", database=database, interactive=False, verbosity=0)
    return len(pending)
