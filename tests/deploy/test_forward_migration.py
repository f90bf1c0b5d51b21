"""A database made by an earlier release migrates forward with every row intact.

The release is the commit named in ``BASELINE`` (main before issue 14 moved models between
apps with ``SeparateDatabaseAndState``). Its code is taken from git into a temporary
folder; it migrates a new, empty database on the test server, loads the demo course
(material ingested, so chunks and their vectors exist) and one row in nearly every table
(``forward_migration_seed.py``). Then this checkout's ``migrate`` runs on the same database.
Every table keeps its rows (counted, and the first rows compared column by column), the
content types follow the models to their new apps, and this checkout's ORM reads the
moved rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from psycopg import sql

from tests.scratch_databases import scratch_database as new_database

ROOT = Path(__file__).resolve().parents[2]
BASELINE = "4ea2320"  # main at the start of issue 14's moves
SAMPLE_ROWS = 3
# Columns that migrations since BASELINE renamed (jobs' columns took the job machine's
# names, config/jobs.py): their values are compared under the new name.
RENAMED_COLUMNS = {
    "lti_ltiscorepost": {"state": "status", "started_at": "claimed_at"},
    "tutor_message": {"started": "claimed_at"},
    "grading_proposal": {"started_at": "claimed_at"},
    "learners_questiongeneration": {"started_at": "claimed_at"},
    "tutor_material": {"failure_reason": "error"},
}
# Columns that a migration fills where they were empty: an unfinished job queued or
# claimed before leases existed gets a lapsed lease, so the recovery sweep finds it.
FILLED_WHERE_EMPTY = {
    "grading_proposal": {"lease_until"},
    "learners_questiongeneration": {"lease_until"},
    "tutor_material": {"lease_until"},
}

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=120)


@pytest.fixture
def baseline_tree(tmp_path) -> Path:
    if _git("cat-file", "-e", f"{BASELINE}^{{commit}}").returncode != 0:
        pytest.skip(f"this clone's history does not reach {BASELINE} (a shallow clone)")
    archive = tmp_path / "baseline.tar"
    done = _git("archive", "--format=tar", f"--output={archive}", BASELINE)
    assert done.returncode == 0, done.stderr.decode()
    tree = tmp_path / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture
def scratch_database():
    with new_database("forward") as database:
        yield database


def _manage(tree: Path, database: dict, *args: str, stdin: str | None = None) -> str:
    """``manage.py`` of ``tree`` (its own code, this venv) against ``database``."""
    # A settings module of the run's own: the embedded server listens on a socket path,
    # which a DATABASE_URL cannot carry. The placeholder URL keeps settings from starting
    # an embedded server of their own; the real entry replaces it.
    overrides = tree / "forward_settings.py"
    overrides.write_text(
        "from config.settings_test import *  # noqa: F403\n"
        "from config.settings_test import DATABASES\n"
        f"DATABASES['default'].update(NAME={database['dbname']!r}, USER={database['user']!r},"
        f" PASSWORD={database['password'] or ''!r}, HOST={database['host']!r},"
        f" PORT={str(database['port'] or '')!r})\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "forward_settings",
        "PYTHONPATH": str(tree),
        "DATABASE_URL": "postgres://placeholder@127.0.0.1:1/placeholder",
        "REDIS_URL": settings.REDIS_URL,
        "MEDIA_ROOT": str(tree / "var" / "media"),
        "WARM_ON_START": "0",
        "LLM_BASE_URL": "",
    }
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=tree,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        overrides.unlink()
    assert done.returncode == 0, f"manage.py {' '.join(args)} in {tree}:\n{done.stderr[-4000:]}"
    return done.stdout


def _tables(database: dict) -> dict[str, dict]:
    """Every table of the public schema: its row count and its first rows (by the first
    column), as JSON-ready dicts."""
    found = {}
    with psycopg.connect(**database) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        for name in names:
            table = sql.Identifier(name)
            count = db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
            cursor = db.execute(
                sql.SQL("SELECT * FROM {} ORDER BY 1 LIMIT {}").format(
                    table, sql.Literal(SAMPLE_ROWS)
                )
            )
            columns = [c.name for c in cursor.description]
            rows = [
                {c: json.dumps(v, default=str) for c, v in zip(columns, row, strict=True)}
                for row in cursor.fetchall()
            ]
            found[name] = {"count": count, "rows": rows}
    return found


def _content_types(database: dict) -> dict[tuple[str, str], int]:
    with psycopg.connect(**database) as db:
        rows = db.execute("SELECT app_label, model, id FROM django_content_type").fetchall()
    return {(app, model): pk for app, model, pk in rows}


def test_a_database_of_the_earlier_release_migrates_forward_with_every_row(
    baseline_tree, scratch_database
):
    _manage(baseline_tree, scratch_database, "migrate", "--no-input")
    _manage(baseline_tree, scratch_database, "load_demo")
    seeded = json.loads(
        _manage(
            baseline_tree,
            scratch_database,
            "shell",
            stdin=(ROOT / "tests" / "deploy" / "forward_migration_seed.py").read_text(),
        )
        .strip()
        .splitlines()[-1]
    )
    before = _tables(scratch_database)
    content_types_before = _content_types(scratch_database)
    filled = [t for t, info in before.items() if info["count"] and not t.startswith("django_")]
    print(f"seeded: {len(filled)} tables with rows; left to the demo: {seeded['unfilled']}")
    assert len(filled) >= 40, f"the seed filled too few tables: {seeded}"

    _manage(ROOT, scratch_database, "migrate", "--no-input")
    after = _tables(scratch_database)
    # Models added since BASELINE (a moved one keeps its content type's id) bring their
    # four default permissions each.
    added_types = set(_content_types(scratch_database).values()) - set(
        content_types_before.values()
    )
    added_rows = {"auth_permission": 4 * len(added_types)}

    for table, old in before.items():
        if table == "django_migrations":
            assert after[table]["count"] >= old["count"]
            continue
        if table == "django_content_type":
            continue  # checked below: rows follow their models to new apps
        assert table in after, f"table {table} is gone after migrating forward"
        new = after[table]
        expected = old["count"] + added_rows.get(table, 0)
        assert new["count"] == expected, f"{table}: {old['count']} rows → {new['count']}"
        renamed = RENAMED_COLUMNS.get(table, {})
        filled_columns = FILLED_WHERE_EMPTY.get(table, set())
        for old_row, new_row in zip(old["rows"], new["rows"], strict=True):
            old_row = {
                renamed.get(c, c): v
                for c, v in old_row.items()
                if not (c in filled_columns and v == json.dumps(None))
            }
            lost = [c for c in old_row if c not in new_row]
            assert not lost, f"{table}: columns {lost} are gone after migrating forward"
            kept = {c: v for c, v in new_row.items() if c in old_row}
            assert kept == old_row, f"{table}: a row changed on the way forward"

    # A moved model keeps its content type (same id, so permissions, admin history and
    # anything else pointing at it follow), renamed to its new app; none is left behind.
    old_types, new_types = content_types_before, _content_types(scratch_database)
    for model in apps.get_models():
        label = (model._meta.app_label, model._meta.model_name)
        if label in old_types:
            assert new_types.get(label) == old_types[label], f"{label}'s content type changed"
            continue
        moved_from = [key for key in old_types if key[1] == label[1]]
        for old_label in moved_from:
            assert new_types.get(label) == old_types[old_label], (
                f"{old_label} moved to {label} without its content type"
            )
            assert old_label not in new_types, f"{old_label}'s content type was left behind"

    # This checkout's ORM reads what the old release wrote.
    counted = json.loads(
        _manage(
            ROOT,
            scratch_database,
            "shell",
            "-c",
            "import json; from django.apps import apps; print(json.dumps({m._meta.db_table:"
            " m._default_manager.count() for m in apps.get_models() if m._meta.managed}))",
        )
        .strip()
        .splitlines()[-1]
    )
    for table, count in counted.items():
        if table in before and table != "django_content_type":
            expected = before[table]["count"] + added_rows.get(table, 0)
            assert count == expected, f"{table} reads {count} rows through the ORM"
