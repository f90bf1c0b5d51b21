"""Commands that need the schema bring it up to date first (issue 16, item 15): right after
``make test`` the development database has no tables, and ``eval_grading`` /
``eval_retrieval`` stopped on ``relation "learners_course" does not exist``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from config.schema import schema_pending_migrations
from tests.grading.test_eval_grading import _write_set
from tests.material.material_files import MARKDOWN, VOLCANO
from tests.scratch_databases import scratch_database


@pytest.fixture
def empty_database(django_db_blocker):
    """The default connection pointed at a new, empty database on the same server."""
    connection = connections["default"]
    old_name = connection.settings_dict["NAME"]
    with scratch_database("unmigrated") as database, django_db_blocker.unblock():
        connection.close()
        connection.settings_dict["NAME"] = database["dbname"]
        try:
            yield database["dbname"]
        finally:
            connection.close()
            connection.settings_dict["NAME"] = old_name


def test_eval_grading_on_an_unmigrated_database_migrates_and_measures(empty_database, tmp_path):
    assert schema_pending_migrations(), "the database starts without tables"
    out, err = StringIO(), StringIO()
    directory = _write_set(tmp_path / "set")
    call_command("eval_grading", str(directory), "--folds", "2", "--json", stdout=out, stderr=err)
    assert "qwk" in json.dumps(json.loads(out.getvalue())).lower()
    assert "applying" in err.getvalue() and "migrate" in err.getvalue()
    assert schema_pending_migrations() == []


def test_eval_retrieval_on_an_unmigrated_database_migrates_and_measures(
    empty_database, tmp_path, settings
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "cells.md").write_text(MARKDOWN)
    (tmp_path / "documents" / "volcano.md").write_text(VOLCANO)
    question = {"question": "What is molten rock called?", "document": "volcano.md"}
    (tmp_path / "questions.jsonl").write_text(json.dumps({**question, "answers": ["lava"]}))
    out, err = StringIO(), StringIO()
    call_command("eval_retrieval", str(tmp_path), "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["questions"] == 1
    assert "applying" in err.getvalue()
    # Migrated once: the next run says nothing about the schema.
    err = StringIO()
    call_command("eval_retrieval", str(tmp_path), "--json", stdout=StringIO(), stderr=err)
    assert "applying" not in err.getvalue()
