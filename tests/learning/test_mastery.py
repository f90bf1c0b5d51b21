from __future__ import annotations

import json
import math
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from learning.mastery import (
    DEFAULT_MODEL,
    MIN_EVIDENCE,
    MODELS,
    LearnerState,
    MasteryModel,
    Response,
    mastery_model_fit,
    mastery_model_load,
)

# Skill "easy" is answered correctly far more often than "hard"; learners differ in
# ability and improve with practice, so evidence about a learner is informative.
SKILLS = {"easy": 1.5, "medium": 0.0, "hard": -1.5}


def synthetic_log(*, students: int, per_student: int, seed: int, prefix: str) -> list[Response]:
    rng = random.Random(seed)
    rows = []
    for s in range(students):
        ability = rng.gauss(0.0, 1.2)
        practice: dict[str, int] = {}
        for _ in range(per_student):
            skill = rng.choice(list(SKILLS))
            logit = ability + SKILLS[skill] + 0.3 * practice.get(skill, 0)
            correct = int(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
            practice[skill] = practice.get(skill, 0) + 1
            rows.append(Response(f"{prefix}-{s}", skill, correct))
    return rows


@pytest.fixture(scope="module")
def train_log() -> list[Response]:
    return synthetic_log(students=80, per_student=30, seed=1, prefix="train")


@pytest.fixture(scope="module")
def fitted(train_log) -> dict[str, MasteryModel]:
    return {name: mastery_model_fit(responses=train_log, model=name) for name in MODELS}


def write_csv(path: Path, rows: list[Response]) -> Path:
    lines = ["student_id,skill_id,correct"] + [
        f"{r.student_id},{r.skill_id},{r.correct}" for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


LEARNER = [
    Response("ann", "easy", 0),
    Response("ann", "hard", 0),
    Response("ann", "easy", 1),
    Response("ann", "medium", 0),
    Response("ann", "easy", 1),
    Response("ann", "hard", 1),
]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_changing_a_later_answer_leaves_earlier_predictions_unchanged(fitted, name):
    model = fitted[name]
    changed = LEARNER[:-1] + [LEARNER[-1]._replace(correct=0)]
    before, after = model.predict_sequence(LEARNER), model.predict_sequence(changed)
    assert list(before) == list(after)


@pytest.mark.parametrize("name", ["elo", "pfa", "best_lr"])
def test_earlier_answers_move_the_estimate(fitted, name):
    model = fitted[name]
    good = [r._replace(correct=1) for r in LEARNER[:-1]] + [LEARNER[-1]]
    bad = [r._replace(correct=0) for r in LEARNER[:-1]] + [LEARNER[-1]]
    assert model.predict_sequence(good)[-1] > model.predict_sequence(bad)[-1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_other_students_answers_do_not_change_a_learners_predictions(fitted, name):
    model = fitted[name]
    others = [Response("bob", r.skill_id, 1 - r.correct) for r in LEARNER]
    interleaved = [row for pair in zip(LEARNER, others, strict=True) for row in pair]
    alone = model.predict_sequence(LEARNER)
    mixed = model.predict_sequence(interleaved)
    assert list(mixed[::2]) == list(alone)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_learner_with_no_evidence_gets_a_skill_prior_and_not_enough_data(fitted, name):
    model = fitted[name]
    easy, hard = (model.predict(LearnerState(), skill_id=s) for s in ("easy", "hard"))
    assert easy.attempts == hard.attempts == 0
    assert not easy.enough_data and not hard.enough_data
    assert easy.probability > hard.probability


@pytest.fixture(scope="module")
def big_course() -> tuple[list[Response], MasteryModel]:
    # Big enough a course that regularisation no longer pulls the prior to the middle.
    course_log = synthetic_log(students=200, per_student=30, seed=5, prefix="course")
    return course_log, mastery_model_fit(responses=course_log)


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_the_product_prior_matches_how_new_learners_did_on_their_first_try(big_course, skill):
    course_log, model = big_course
    first_tries: dict[str, int] = {}
    for r in course_log:
        if r.skill_id == skill:
            first_tries.setdefault(r.student_id, r.correct)
    first_try_rate = sum(first_tries.values()) / len(first_tries)
    prior = model.predict(LearnerState(), skill_id=skill).probability
    assert prior == pytest.approx(first_try_rate, abs=0.06)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_unseen_skill_gets_a_probability_and_not_enough_data(fitted, name):
    model = fitted[name]
    state = LearnerState()
    for r in LEARNER:
        model.update(state, skill_id=r.skill_id, correct=r.correct)
    for _ in range(MIN_EVIDENCE):
        model.update(state, skill_id="never-taught", correct=1)
    estimate = model.predict(state, skill_id="never-taught")
    assert 0.0 < estimate.probability < 1.0
    assert estimate.attempts == MIN_EVIDENCE
    assert not estimate.enough_data


def test_enough_data_once_the_learner_has_answered_min_evidence_items(fitted):
    model = fitted[DEFAULT_MODEL]
    state = LearnerState()
    for count in range(1, MIN_EVIDENCE + 1):
        model.update(state, skill_id="medium", correct=1)
        assert model.predict(state, skill_id="medium").enough_data == (count >= MIN_EVIDENCE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameters_round_trip_through_json(fitted, train_log, name):
    model = fitted[name]
    loaded = mastery_model_load(data=json.loads(json.dumps(model.to_dict())))
    assert type(loaded) is type(model)
    assert loaded.to_dict() == model.to_dict()
    sample = train_log[:200]
    assert list(loaded.predict_sequence(sample)) == list(model.predict_sequence(sample))


def test_loading_unknown_model_data_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        mastery_model_load(data={"model": "dkt", "version": 1, "params": {}})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_incremental_updates_through_stored_state_equal_the_batch_predictions(
    fitted, train_log, name
):
    model = fitted[name]
    sample = [r for r in train_log if r.student_id == "train-3"]
    stored = json.dumps(LearnerState().to_dict())
    incremental = []
    for r in sample:
        state = LearnerState.from_dict(json.loads(stored))
        incremental.append(model.predict(state, skill_id=r.skill_id).probability)
        stored = json.dumps(model.update(state, skill_id=r.skill_id, correct=r.correct).to_dict())
    assert incremental == pytest.approx(list(model.predict_sequence(sample)), abs=1e-12)


def test_an_empty_stored_state_is_a_learner_with_no_evidence(fitted):
    model = fitted[DEFAULT_MODEL]
    assert model.predict(LearnerState.from_dict({}), skill_id="easy") == model.predict(
        LearnerState(), skill_id="easy"
    )
    state = model.update(LearnerState.from_dict({}), skill_id="easy", correct=True)
    assert '"r": [1]' in json.dumps(state.to_dict())


def test_update_rejects_a_correct_value_other_than_zero_or_one(fitted):
    with pytest.raises(ValueError):
        fitted[DEFAULT_MODEL].update(LearnerState(), skill_id="easy", correct=2)


def test_product_model_beats_the_skill_average_on_new_learners(fitted):
    test_log = synthetic_log(students=40, per_student=30, seed=2, prefix="test")
    from sklearn.metrics import roc_auc_score

    y = [r.correct for r in test_log]
    product = roc_auc_score(y, fitted[DEFAULT_MODEL].predict_sequence(test_log))
    baseline = roc_auc_score(y, fitted["skill_average"].predict_sequence(test_log))
    assert product > baseline + 0.05


@pytest.fixture
def csv_pair(tmp_path, train_log) -> tuple[Path, Path]:
    test_log = synthetic_log(students=30, per_student=20, seed=3, prefix="test")
    return write_csv(tmp_path / "train.csv", train_log), write_csv(tmp_path / "test.csv", test_log)


def test_eval_mastery_prints_auc_rmse_and_log_loss(csv_pair):
    train, test = csv_pair
    out = StringIO()
    call_command("eval_mastery", train=str(train), test=str(test), stdout=out)
    text = out.getvalue()
    for label in ("AUC 0.", "RMSE 0.", "log loss 0."):
        assert label in text
    assert f"model {DEFAULT_MODEL}" in text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eval_mastery_json_is_one_object_with_the_metrics(csv_pair, name):
    train, test = csv_pair
    out = StringIO()
    call_command(
        "eval_mastery", train=str(train), test=str(test), model=name, json=True, stdout=out
    )
    result = json.loads(out.getvalue())
    assert result["model"] == name
    assert result["test"] == {"responses": 600, "students": 30, "skills": 3}
    assert 0.5 < result["auc"] <= 1.0
    assert 0.0 < result["rmse"] < 0.5
    assert 0.0 < result["log_loss"] < math.log(2)


def test_eval_mastery_accepts_numeric_ids_and_extra_columns(tmp_path):
    rows = synthetic_log(students=30, per_student=20, seed=4, prefix="x")
    numeric = {s: str(i) for i, s in enumerate(sorted({r.student_id for r in rows}))}
    skills = {s: str(i + 1) for i, s in enumerate(SKILLS)}
    lines = ["order,correct,skill_id,student_id"] + [
        f"{i},{r.correct},{skills[r.skill_id]},{numeric[r.student_id]}" for i, r in enumerate(rows)
    ]
    path = tmp_path / "numeric.csv"
    path.write_text("\n".join(lines) + "\n")
    out = StringIO()
    call_command("eval_mastery", train=str(path), test=str(path), json=True, stdout=out)
    assert json.loads(out.getvalue())["train"] == {"responses": 600, "students": 30, "skills": 3}


GOOD = "student_id,skill_id,correct\na,s1,1\na,s1,0\nb,s2,1\n"


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        ("", "", "empty file"),
        ("student_id,correct\na,1\n", ":1:", "missing column(s) skill_id"),
        ("student_id,skill_id,correct\n", "", "no responses"),
        ("student_id,skill_id,correct\na,s1,1\na,s1,yes\n", ":3:", "correct must be 0 or 1"),
        ("student_id,skill_id,correct\na,s1,1\nb,s1,0\na,s2\n", ":4:", "expected 3 fields"),
        ("student_id,skill_id,correct\na,s1,1\n,s1,0\n", ":3:", "empty student_id"),
        ("student_id,skill_id,correct\na,s1,0.5\n", ":2:", "correct must be 0 or 1"),
    ],
)
@pytest.mark.parametrize("which", ["train", "test"])
def test_eval_mastery_names_the_file_and_line_of_a_malformed_file(
    tmp_path, content, where, reason, which
):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    files = {"train": str(good), "test": str(good), which: str(bad)}
    with pytest.raises(CommandError) as raised:
        call_command("eval_mastery", **files, stdout=StringIO())
    message = str(raised.value)
    assert message.startswith(f"{bad}{where}")
    assert reason in message


def test_eval_mastery_reports_a_missing_file(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    with pytest.raises(CommandError, match="cannot read"):
        call_command("eval_mastery", train=str(tmp_path / "nope.csv"), test=str(good))
