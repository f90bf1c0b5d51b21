from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from grading.evaluation import (
    DatasetError,
    adjacent_agreement,
    criterion_agreement,
    dataset_load,
    exact_agreement,
    group_fairness,
    quadratic_weighted_kappa,
    standardized_mean_difference,
)
from grading.scoring import Criterion

# --- Metrics on examples small enough to check by hand ------------------------------------


def test_kappa_of_identical_scores_is_one():
    assert quadratic_weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert quadratic_weighted_kappa([2, 2, 2], [2, 2, 2]) == 1.0


def test_kappa_of_reversed_scores_is_minus_one():
    assert quadratic_weighted_kappa([0, 1, 2], [2, 1, 0]) == pytest.approx(-1.0)


def test_kappa_of_a_constant_guess_is_zero():
    assert quadratic_weighted_kappa([0, 1, 2, 3], [1, 1, 1, 1]) == pytest.approx(0.0)


def test_exact_and_adjacent_agreement_count_steps():
    human, machine = [0, 1, 2, 3], [0, 2, 2, 0]
    assert exact_agreement(human, machine) == 0.5
    assert adjacent_agreement(human, machine) == 0.75


def test_smd_is_the_mean_difference_in_human_standard_deviations():
    assert standardized_mean_difference([1, 2, 3], [2, 3, 4]) == pytest.approx(1.0)
    assert standardized_mean_difference([1, 2, 3], [1, 2, 3]) == 0.0
    assert standardized_mean_difference([2, 2, 2], [3, 3, 3]) is None


def test_criterion_agreement_works_on_rubric_steps():
    half_steps = Criterion("grammar", 1.0, 5.0, 0.5)
    metrics = criterion_agreement(half_steps, [1.0, 1.5, 2.0, 5.0], [1.5, 1.5, 2.0, 4.0])
    assert metrics["exact"] == 0.5
    # 1.0 vs 1.5 is one step; 5.0 vs 4.0 is two.
    assert metrics["adjacent"] == 0.75


def test_fairness_reports_each_known_group_and_names_the_one_that_misses():
    human = np.array([2.0, 3.0] * 100 + [2.0, 3.0] * 30)
    machine = human.copy()
    machine[:200] += 0.5  # group "a" is over-scored by one human SD
    groups = {"school": ["a"] * 200 + ["b"] * 60, "gender": [""] * 260}
    rows = group_fairness(groups, human, machine)
    assert [(r["group"], r["value"], r["n"]) for r in rows] == [
        ("school", "a", 200),
        ("school", "b", 60),
    ]
    by_value = {r["value"]: r for r in rows}
    assert by_value["a"]["smd"] == pytest.approx(0.5 / np.std([2.0, 3.0] * 100, ddof=1))
    assert by_value["a"]["required"] and by_value["a"]["meets"] is False
    assert by_value["b"]["smd"] == 0.0 and not by_value["b"]["required"]


def test_fairness_skips_groups_under_fifty_essays():
    rows = group_fairness({"school": ["a"] * 49}, [1.0, 2.0] * 24 + [1.0], [1.0] * 49)
    assert rows == []


# --- Reading a set from disk --------------------------------------------------------------

ESSAY_WORDS = [
    *("energy", "light", "plants", "leaves", "water", "oxygen", "glucose", "cells"),
    *("respiration", "sunlight", "carbon", "because", "therefore", "however", "evidence"),
]


def _write_set(
    directory: Path,
    *,
    essays: int = 24,
    criteria=(("content", 0, 3, 1), ("style", 1.0, 3.0, 0.5)),
    extra_columns: dict[str, list[str]] | None = None,
    override: dict | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rubric = {
        "title": "Synthetic set",
        "criteria": [{"name": n, "min": lo, "max": hi, "step": st} for n, lo, hi, st in criteria],
    }
    (directory / "rubric.json").write_text(json.dumps(rubric), encoding="utf-8")
    names = [name for name, *_ in criteria]
    extra_columns = extra_columns or {}
    with (directory / "essays.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["essay_id", "text", *names, *extra_columns])
        for index in range(essays):
            level = index % 4
            words = [ESSAY_WORDS[(index + k) % len(ESSAY_WORDS)] for k in range(5 + 12 * level)]
            text = " ".join(words).capitalize() + "."
            scores = [min(level, 3), 1.0 + 0.5 * min(level, 4)][: len(names)]
            row = [f"e{index}", text, *scores, *(v[index] for v in extra_columns.values())]
            writer.writerow(row)
    if override:
        rows = list(csv.reader((directory / "essays.csv").open(encoding="utf-8")))
        header = rows[0]
        for (line, column), value in override.items():
            rows[line][header.index(column)] = value
        with (directory / "essays.csv").open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return directory


def test_a_set_loads_with_its_groups(tmp_path):
    groups = {"group:school": ["north", "south", ""] * 8}
    dataset = dataset_load(_write_set(tmp_path / "set", extra_columns=groups))
    assert len(dataset) == 24
    assert [c.name for c in dataset.criteria] == ["content", "style"]
    assert dataset.groups["school"][:3] == ["north", "south", ""]
    assert dataset.scores["style"].dtype == float


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no_csv", "essays.csv does not exist"),
        ("no_rubric", "rubric.json does not exist"),
        ("bad_json", "not valid JSON"),
        ("extra_column", "do not match the criteria"),
        ("non_numeric", "'excellent', not a number"),
        ("outside", "outside the rubric"),
        ("off_step", "outside the rubric"),
        ("empty_essay", "line 4: the essay is empty"),
    ],
)
def test_a_broken_set_is_refused_with_a_clear_message(tmp_path, breakage, message):
    directory = tmp_path / "set"
    if breakage == "extra_column":
        _write_set(directory, extra_columns={"mystery": ["1"] * 24})
    elif breakage == "non_numeric":
        _write_set(directory, override={(3, "content"): "excellent"})
    elif breakage == "outside":
        _write_set(directory, override={(3, "content"): "7"})
    elif breakage == "off_step":
        _write_set(directory, override={(3, "style"): "1.25"})
    elif breakage == "empty_essay":
        _write_set(directory, override={(3, "text"): "  "})
    else:
        _write_set(directory)
        if breakage == "no_csv":
            (directory / "essays.csv").unlink()
        elif breakage == "no_rubric":
            (directory / "rubric.json").unlink()
        elif breakage == "bad_json":
            (directory / "rubric.json").write_text("{criteria: [", encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        dataset_load(directory)
    with pytest.raises(CommandError, match=message):
        call_command("eval_grading", str(directory), "--json", stdout=StringIO())


# --- The command --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_prints_one_json_object_and_leaves_nothing_behind(tmp_path):
    from grading.models import Assignment
    from learners.models import Course, User

    groups = {"group:school": ["north", "south"] * 30}
    directory = _write_set(tmp_path / "tiny", essays=60, extra_columns=groups)
    users_before = User.objects.count()
    out = StringIO()
    call_command("eval_grading", str(directory), "--folds", "3", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["dataset"] == "tiny" and result["folds"] == 3 and result["essays"] == 60
    rows = {row["criterion"]: row for row in result["criteria"]}
    assert set(rows) == {"content", "style"}
    for row in rows.values():
        for label in ("scorer", "baseline"):
            assert -1.0 <= row[label]["qwk"] <= 1.0
            assert 0.0 <= row[label]["exact"] <= row[label]["adjacent"] <= 1.0
        assert 0.0 <= row["calibration"]["mean_confidence"] <= 1.0
        assert [(g["value"], g["n"]) for g in row["fairness"]] == []  # 30 per school < 50
    assert not Course.objects.exists() and not Assignment.objects.exists()
    assert User.objects.count() == users_before


@pytest.mark.django_db
def test_the_command_reports_fairness_per_group_in_text(tmp_path):
    groups = {"group:school": ["north"] * 55 + ["south"] * 55}
    directory = _write_set(tmp_path / "grouped", essays=110, extra_columns=groups)
    out = StringIO()
    call_command("eval_grading", str(directory), "--folds", "2", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "group school=north (n=55): SMD" in text
    assert "group school=south (n=55): SMD" in text
    assert "mean QWK: scorer" in text


@pytest.mark.django_db
def test_the_command_trains_on_one_set_and_tests_on_another(tmp_path):
    train = _write_set(tmp_path / "train", essays=32)
    test = _write_set(tmp_path / "test", essays=12)
    out = StringIO()
    call_command("eval_grading", "--train", str(train), "--test", str(test), "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["mode"] == "train-test" and result["train"] == "train"
    assert result["dataset"] == "test" and result["essays"] == 12


@pytest.mark.django_db
def test_the_command_refuses_sets_with_different_rubrics(tmp_path):
    train = _write_set(tmp_path / "train", essays=32)
    test = _write_set(tmp_path / "test", essays=12, criteria=(("content", 0, 3, 1),))
    with pytest.raises(CommandError, match="same rubric criteria"):
        call_command("eval_grading", "--train", str(train), "--test", str(test), stdout=StringIO())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "Give DATASET_DIR"),
        (["--train", "x"], "go together"),
        (["somewhere", "--train", "x", "--test", "y"], "not both"),
        (["somewhere", "--folds", "1"], "at least 2"),
    ],
)
def test_the_command_refuses_confusing_arguments(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("eval_grading", *arguments, stdout=StringIO())
