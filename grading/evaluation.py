"""How well machine scores agree with teachers, and whether they are fair across groups.

Metrics follow the automated-essay-scoring literature: quadratic weighted kappa (QWK) on
scores mapped to integer rubric steps, exact and adjacent (within one step) agreement, and
the standardized mean difference (SMD) of machine minus human scores, in human standard
deviations, per learner group. A group with at least ``FAIRNESS_REQUIRED_N`` essays is
expected to stay within ``FAIRNESS_SMD_LIMIT``.

Also here: reading an essay set from disk (``essays.csv`` + ``rubric.json``), a plain
baseline scorer, and k-fold cross-validation of the production scorer beside it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.metrics import cohen_kappa_score
from sklearn.model_selection import KFold

from grading.scoring import Criterion, EssayScorer

GROUP_PREFIX = "group:"
FAIRNESS_MIN_N = 50  # groups smaller than this are not reported: their SMD is noise
FAIRNESS_REQUIRED_N = 100  # groups this large must meet the limit
FAIRNESS_SMD_LIMIT = 0.10


class DatasetError(ValueError):
    """An essay set on disk that cannot be used, with a message a person can act on."""


@dataclass
class EssayDataset:
    name: str
    title: str
    criteria: list[Criterion]
    essay_ids: list[str]
    texts: list[str]
    scores: dict[str, np.ndarray]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


# Metrics -------------------------------------------------------------------------------


def quadratic_weighted_kappa(
    human: Sequence[int] | np.ndarray, machine: Sequence[int] | np.ndarray
) -> float:
    """QWK of integer levels; 1.0 when the two agree perfectly, even on a constant vector
    (where the kappa formula is 0/0)."""
    if np.array_equal(np.asarray(human), np.asarray(machine)):
        return 1.0
    return float(cohen_kappa_score(np.asarray(human), np.asarray(machine), weights="quadratic"))


def exact_agreement(
    human: Sequence[int] | np.ndarray, machine: Sequence[int] | np.ndarray
) -> float:
    return float(np.mean(np.asarray(human) == np.asarray(machine)))


def adjacent_agreement(
    human: Sequence[int] | np.ndarray, machine: Sequence[int] | np.ndarray
) -> float:
    """Share of essays where the machine is at most one rubric step from the human."""
    return float(np.mean(np.abs(np.asarray(human) - np.asarray(machine)) <= 1))


def standardized_mean_difference(
    human: Sequence[float] | np.ndarray, machine: Sequence[float] | np.ndarray
) -> float | None:
    """(mean machine - mean human) / SD human; None when the humans' scores do not vary."""
    human_scores = np.asarray(human, dtype=float)
    machine_scores = np.asarray(machine, dtype=float)
    if len(human_scores) < 2:
        return None
    spread = float(np.std(human_scores, ddof=1))
    if spread == 0:
        return None
    return float((machine_scores.mean() - human_scores.mean()) / spread)


def criterion_agreement(
    criterion: Criterion, human: Sequence[float] | np.ndarray, machine: Sequence[float] | np.ndarray
) -> dict[str, float | None]:
    human_levels = criterion.to_levels(human)
    machine_levels = criterion.to_levels(machine)
    return {
        "qwk": quadratic_weighted_kappa(human_levels, machine_levels),
        "exact": exact_agreement(human_levels, machine_levels),
        "adjacent": adjacent_agreement(human_levels, machine_levels),
        "smd": standardized_mean_difference(human, machine),
    }


def group_fairness(
    groups: Mapping[str, Sequence[str]],
    human: Sequence[float] | np.ndarray,
    machine: Sequence[float] | np.ndarray,
    *,
    min_n: int = FAIRNESS_MIN_N,
) -> list[dict]:
    """SMD per value of every group column (empty values are unknown and skipped).

    The SMD of a group uses that group's own human mean and SD, so it measures whether the
    machine over- or under-scores the group, not whether the group scores differently.
    """
    human_scores = np.asarray(human, dtype=float)
    machine_scores = np.asarray(machine, dtype=float)
    rows = []
    for column, values in groups.items():
        column_values = np.asarray([value.strip() for value in values], dtype=object)
        for value in sorted({v for v in column_values if v}):
            members = column_values == value
            count = int(members.sum())
            if count < min_n:
                continue
            smd = standardized_mean_difference(human_scores[members], machine_scores[members])
            required = count >= FAIRNESS_REQUIRED_N
            rows.append(
                {
                    "group": column,
                    "value": value,
                    "n": count,
                    "smd": smd,
                    "required": required,
                    "meets": None if smd is None else abs(smd) <= FAIRNESS_SMD_LIMIT,
                }
            )
    return rows


# Reading an essay set ------------------------------------------------------------------


def _rubric_criteria(rubric_path: Path) -> tuple[str, list[Criterion]]:
    try:
        rubric = json.loads(rubric_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{rubric_path} is not valid JSON: {error}") from error
    if not isinstance(rubric, dict) or not isinstance(rubric.get("criteria"), list):
        raise DatasetError(f"{rubric_path} needs a 'criteria' list.")
    criteria = []
    for index, entry in enumerate(rubric["criteria"]):
        try:
            criteria.append(
                Criterion(
                    name=str(entry["name"]),
                    min=float(entry["min"]),
                    max=float(entry["max"]),
                    step=float(entry["step"]),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(
                f"{rubric_path}: criterion {index + 1} needs a name and numeric min, max and "
                f"step with min < max ({error})."
            ) from error
    if not criteria:
        raise DatasetError(f"{rubric_path} lists no criteria.")
    names = [criterion.name for criterion in criteria]
    if len(set(names)) != len(names):
        raise DatasetError(f"{rubric_path} repeats a criterion name.")
    return str(rubric.get("title") or rubric_path.parent.name), criteria


def dataset_load(directory: str | Path) -> EssayDataset:
    """Read ``essays.csv`` and ``rubric.json`` from a directory, checking every score."""
    directory = Path(directory)
    essays_path = directory / "essays.csv"
    rubric_path = directory / "rubric.json"
    for path in (essays_path, rubric_path):
        if not path.is_file():
            raise DatasetError(f"{path} does not exist.")
    title, criteria = _rubric_criteria(rubric_path)

    csv.field_size_limit(16 * 1024 * 1024)
    with essays_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        rows = list(reader)
    missing = [name for name in ("essay_id", "text") if name not in columns]
    if missing:
        raise DatasetError(f"{essays_path} lacks the column(s) {', '.join(missing)}.")
    names = [criterion.name for criterion in criteria]
    score_columns = [c for c in columns if c not in ("essay_id", "text")]
    score_columns = [c for c in score_columns if not c.startswith(GROUP_PREFIX)]
    if sorted(score_columns) != sorted(names):
        raise DatasetError(
            f"The score columns of {essays_path} ({', '.join(score_columns) or 'none'}) do not "
            f"match the criteria of {rubric_path} ({', '.join(names)})."
        )
    if not rows:
        raise DatasetError(f"{essays_path} has no essays.")

    scores: dict[str, list[float]] = {name: [] for name in names}
    for line, row in enumerate(rows, start=2):
        if not (row.get("text") or "").strip():
            # A teacher cannot confirm a grade of nothing; the product refuses empty essays.
            raise DatasetError(f"{essays_path} line {line}: the essay is empty.")
        for criterion in criteria:
            raw = (row.get(criterion.name) or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise DatasetError(
                    f"{essays_path} line {line}: {criterion.name} is {raw!r}, not a number."
                ) from None
            if not criterion.is_on_scale(value):
                raise DatasetError(
                    f"{essays_path} line {line}: {criterion.name} = {raw} is outside the rubric "
                    f"({criterion.min:g} to {criterion.max:g} in steps of {criterion.step:g})."
                )
            scores[criterion.name].append(value)
    group_columns = [c for c in columns if c.startswith(GROUP_PREFIX)]
    return EssayDataset(
        name=directory.name,
        title=title,
        criteria=criteria,
        essay_ids=[row["essay_id"] for row in rows],
        texts=[row["text"] or "" for row in rows],
        scores={name: np.asarray(values) for name, values in scores.items()},
        groups={
            c.removeprefix(GROUP_PREFIX): [row.get(c) or "" for row in rows] for c in group_columns
        },
    )


# Baseline and cross-validation ---------------------------------------------------------


class BaselineScorer:
    """A plain, well-known baseline: TF-IDF of words plus log length, one ridge regression
    per criterion, rounded to the nearest step. It shows what the production scorer adds."""

    def __init__(self, criteria: Sequence[Criterion]) -> None:
        self.criteria = list(criteria)

    @staticmethod
    def _length(texts: Sequence[str]) -> sparse.csr_matrix:
        return sparse.csr_matrix([[math.log1p(len(text.split()))] for text in texts])

    def fit(
        self, texts: Sequence[str], scores: Mapping[str, Sequence[float] | np.ndarray]
    ) -> BaselineScorer:
        self._tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        features = sparse.hstack([self._tfidf.fit_transform(texts), self._length(texts)])
        targets = np.column_stack([np.asarray(scores[c.name], float) for c in self.criteria])
        self._model = Ridge(alpha=1.0).fit(features.tocsr(), targets)
        return self

    def predict(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        features = sparse.hstack([self._tfidf.transform(texts), self._length(texts)]).tocsr()
        raw = self._model.predict(features).reshape(len(texts), -1)
        return {
            c.name: c.from_levels(c.to_levels(raw[:, column]))
            for column, c in enumerate(self.criteria)
        }


@dataclass
class Predictions:
    """Held-out scores for every essay of a set, per criterion."""

    scorer: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray]
    baseline: dict[str, np.ndarray]


def _scorer_predict(
    criteria: Sequence[Criterion],
    train_texts: Sequence[str],
    train_scores: Mapping[str, np.ndarray],
    train_vectors: np.ndarray,
    test_texts: Sequence[str],
    test_vectors: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    scorer = EssayScorer(criteria).fit(train_texts, train_scores, vectors=train_vectors)
    predicted = scorer.predict(test_texts, vectors=test_vectors)
    scores = {c.name: np.array([p[c.name].score for p in predicted]) for c in criteria}
    confidence = {c.name: np.array([p[c.name].confidence for p in predicted]) for c in criteria}
    baseline = BaselineScorer(criteria).fit(train_texts, train_scores).predict(test_texts)
    return scores, confidence, baseline


def cross_validate(
    dataset: EssayDataset,
    vectors: np.ndarray,
    *,
    folds: int = 5,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    """k-fold cross-validation: every essay is scored by models that never saw it."""
    if folds < 2 or folds > len(dataset):
        raise DatasetError(f"Cannot make {folds} folds of {len(dataset)} essays.")
    names = [c.name for c in dataset.criteria]
    result = Predictions(
        scorer={n: np.zeros(len(dataset)) for n in names},
        confidence={n: np.zeros(len(dataset)) for n in names},
        baseline={n: np.zeros(len(dataset)) for n in names},
    )
    splitter = KFold(n_splits=folds, shuffle=True, random_state=random_state)
    for fold, (train, test) in enumerate(splitter.split(dataset.texts), start=1):
        scores, confidence, baseline = _scorer_predict(
            dataset.criteria,
            [dataset.texts[i] for i in train],
            {n: dataset.scores[n][train] for n in names},
            vectors[train],
            [dataset.texts[i] for i in test],
            vectors[test],
        )
        for name in names:
            result.scorer[name][test] = scores[name]
            result.confidence[name][test] = confidence[name]
            result.baseline[name][test] = baseline[name]
        if progress:
            progress(fold)
    return result


def train_test_predict(
    train: EssayDataset,
    train_vectors: np.ndarray,
    test: EssayDataset,
    test_vectors: np.ndarray,
) -> Predictions:
    """Train on one set, score another with the same criteria."""
    if [c.name for c in train.criteria] != [c.name for c in test.criteria] or [
        (c.min, c.max, c.step) for c in train.criteria
    ] != [(c.min, c.max, c.step) for c in test.criteria]:
        raise DatasetError("The training and test sets do not have the same rubric criteria.")
    scores, confidence, baseline = _scorer_predict(
        train.criteria, train.texts, train.scores, train_vectors, test.texts, test_vectors
    )
    return Predictions(scorer=scores, confidence=confidence, baseline=baseline)


def calibration_summary(
    criterion: Criterion, human: np.ndarray, machine: np.ndarray, confidence: np.ndarray
) -> dict[str, float]:
    """How well the confidence predicts an exact match: mean confidence beside the actual
    exact-agreement rate, Brier score, and expected calibration error over 10 bins."""
    hits = (criterion.to_levels(human) == criterion.to_levels(machine)).astype(float)
    bins = np.minimum((confidence * 10).astype(int), 9)
    ece = sum(
        abs(confidence[bins == b].mean() - hits[bins == b].mean()) * np.mean(bins == b)
        for b in np.unique(bins)
    )
    return {
        "mean_confidence": float(confidence.mean()),
        "exact_rate": float(hits.mean()),
        "brier": float(np.mean((confidence - hits) ** 2)),
        "ece": float(ece),
    }


def evaluation_report(dataset: EssayDataset, predictions: Predictions) -> dict:
    """Per criterion: agreement of the scorer and the baseline, calibration, fairness."""
    criteria: list[dict[str, Any]] = []
    for criterion in dataset.criteria:
        human = dataset.scores[criterion.name]
        machine = predictions.scorer[criterion.name]
        fairness = group_fairness(dataset.groups, human, machine)
        criteria.append(
            {
                "criterion": criterion.name,
                "n": len(human),
                "scorer": criterion_agreement(criterion, human, machine),
                "baseline": criterion_agreement(
                    criterion, human, predictions.baseline[criterion.name]
                ),
                "calibration": calibration_summary(
                    criterion, human, machine, predictions.confidence[criterion.name]
                ),
                "fairness": fairness,
                "fairness_misses": [
                    f"{row['group']}={row['value']}"
                    for row in fairness
                    if row["required"] and row["meets"] is False
                ],
            }
        )
    scorer_qwk = [row["scorer"]["qwk"] for row in criteria]
    baseline_qwk = [row["baseline"]["qwk"] for row in criteria]
    return {
        "dataset": dataset.name,
        "title": dataset.title,
        "essays": len(dataset),
        "criteria": criteria,
        "mean_qwk": float(np.mean(scorer_qwk)),
        "baseline_mean_qwk": float(np.mean(baseline_qwk)),
    }
