from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from learners.models import Course
from material.models import Chunk, Material
from tests.material.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401

pytestmark = pytest.mark.usefixtures("media_root")


def test_import_material_takes_folders_and_replaces_on_a_second_run(course, tmp_path, capsys):
    folder = tmp_path / "material"
    (folder / "unit").mkdir(parents=True)
    (folder / "cells.md").write_text(MARKDOWN)
    (folder / "unit" / "volcano.md").write_text(VOLCANO)
    (folder / ".hidden.md").write_text(VOLCANO)
    call_command("import_material", str(course.pk), str(folder), "--sync")
    assert sorted(Material.objects.values_list("original_name", "status")) == [
        ("cells.md", "ready"),
        ("volcano.md", "ready"),
    ]
    (folder / "cells.md").write_text(MARKDOWN.replace("glucose", "sugar"))
    call_command("import_material", course.title, str(folder / "cells.md"), "--sync")
    assert Material.objects.count() == 2
    assert Chunk.objects.filter(text__contains="sugar").exists()


def test_import_material_reports_failures(course, tmp_path):
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_material", str(course.pk), str(bad), "--sync")
    with pytest.raises(CommandError, match="No course"):
        call_command("import_material", "no such course", str(bad))


def test_eval_retrieval_measures_and_cleans_up(tmp_path, capsys, db):
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "cells.md").write_text(MARKDOWN)
    (tmp_path / "documents" / "volcano.md").write_text(VOLCANO)
    questions = [
        {
            "question": "Where is glucose energy released?",
            "document": "cells.md",
            "answers": ["mitochondria"],
        },
        {
            "question": "What is molten rock called at the surface?",
            "document": "volcano.md",
            "answers": ["lava"],
        },
        {
            "question": "What is molten rock called at the surface?",
            "document": "cells.md",
            "answers": ["lava"],
        },  # wrong document: never a hit
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    call_command("eval_retrieval", str(tmp_path), "--mode", "hybrid", "keyword", "--json")
    reports = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in reports] == ["hybrid", "keyword"]
    for report in reports:
        assert report["questions"] == 3
        assert report["recall@1"] == pytest.approx(2 / 3, abs=1e-3)
    assert not Course.objects.filter(title__startswith="eval-retrieval-").exists()
    assert not Material.objects.exists()
