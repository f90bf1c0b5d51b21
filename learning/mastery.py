"""Mastery estimates: P(correct) on a learner's next attempt at a concept.

A model is fit once per course on its response log (time-ordered ``(student, skill,
correct)`` rows) and stored as a JSON-able dict. Each learner then carries a small
:class:`LearnerState` that summarises their own evidence; the estimate for a skill is a
function of the fitted parameters and that state alone, so it can be updated after every
answer without refitting and never looks at anyone else's answers.

The product uses :data:`DEFAULT_MODEL`, chosen by measurement with ``manage.py
eval_mastery`` on a by-student 80/20 split of ASSISTments 2009 (test AUC: best_lr 0.783,
Elo 0.727, PFA 0.702, per-skill average 0.618). The others stay because they are small and
keep the comparison reproducible; Elo also needs no fit, so it suits a course with no log.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

# An estimate counts as informed once the learner has answered this many items on the skill;
# below that the product shows it as "not enough data" (it is mostly the course prior).
MIN_EVIDENCE = 3

# How many of the latest outcomes a state keeps, per skill and overall.
SKILL_WINDOW = 5
OVERALL_WINDOW = 10

PROBABILITY_FLOOR = 1e-4


class Response(NamedTuple):
    student_id: str
    skill_id: str
    correct: int


@dataclass(frozen=True)
class MasteryEstimate:
    probability: float
    attempts: int
    enough_data: bool


@dataclass
class SkillRecord:
    attempts: int = 0
    correct: int = 0
    recent: list[int] = field(default_factory=list)
    streak: int = 0  # > 0: trailing run of correct answers, < 0: of wrong ones

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.attempts, "c": self.correct, "r": self.recent, "s": self.streak}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkillRecord:
        return cls(
            attempts=int(data["n"]),
            correct=int(data["c"]),
            recent=[int(x) for x in data["r"]],
            streak=int(data["s"]),
        )


@dataclass
class LearnerState:
    """One learner's evidence in one course, summarised; JSON-able via to_dict()."""

    attempts: int = 0
    correct: int = 0
    recent: list[int] = field(default_factory=list)
    last_skill: str | None = None
    skills: dict[str, SkillRecord] = field(default_factory=dict)
    # Running values that depend on the fitted parameters (Elo ratings, residuals).
    scores: dict[str, float] = field(default_factory=dict)

    def skill(self, skill_id: str) -> SkillRecord:
        return self.skills.get(skill_id) or SkillRecord()

    def record(self, skill_id: str, correct: int) -> None:
        self.attempts += 1
        self.correct += correct
        self.recent = (self.recent + [correct])[-OVERALL_WINDOW:]
        self.last_skill = skill_id
        rec = self.skills.setdefault(skill_id, SkillRecord())
        rec.attempts += 1
        rec.correct += correct
        rec.recent = (rec.recent + [correct])[-SKILL_WINDOW:]
        if correct:
            rec.streak = rec.streak + 1 if rec.streak > 0 else 1
        else:
            rec.streak = rec.streak - 1 if rec.streak < 0 else -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.attempts,
            "c": self.correct,
            "r": self.recent,
            "last": self.last_skill,
            "skills": {k: v.to_dict() for k, v in self.skills.items()},
            "scores": self.scores,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnerState:
        if not data:  # a stored state starts as {} before the first answer
            return cls()
        return cls(
            attempts=int(data["n"]),
            correct=int(data["c"]),
            recent=[int(x) for x in data["r"]],
            last_skill=data["last"],
            skills={k: SkillRecord.from_dict(v) for k, v in data["skills"].items()},
            scores={k: float(v) for k, v in data["scores"].items()},
        )


def _clip(p: float) -> float:
    return min(max(p, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _skill_means(responses: Sequence[Response], *, prior_weight: float = 5.0) -> dict[str, float]:
    """Per-skill share of correct answers, shrunk towards the overall share."""
    total = sum(r.correct for r in responses) / len(responses)
    counts: dict[str, list[int]] = {}
    for r in responses:
        c = counts.setdefault(r.skill_id, [0, 0])
        c[0] += 1
        c[1] += r.correct
    return {
        skill: (correct + prior_weight * total) / (n + prior_weight)
        for skill, (n, correct) in counts.items()
    }


class MasteryModel:
    """Fitted parameters of one course; predicts from a learner's state only."""

    name: ClassVar[str]

    def __init__(self, *, prior: float, skills: dict[str, float]) -> None:
        self.prior = prior  # overall share of correct answers in the training log
        self.skills = skills  # per-skill share of correct answers, shrunk

    # -- to implement -------------------------------------------------------------------
    @classmethod
    def fit(cls, responses: Sequence[Response]) -> MasteryModel:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> MasteryModel:
        raise NotImplementedError

    def _probability(self, state: LearnerState, skill_id: str) -> float:
        raise NotImplementedError

    def _update_scores(self, state: LearnerState, skill_id: str, correct: int) -> None:
        """Update fitted-parameter-dependent running values, before the counts move."""

    # -- shared ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "version": 1, "params": self._params()}

    def predict(self, state: LearnerState, *, skill_id: str) -> MasteryEstimate:
        attempts = state.skill(skill_id).attempts
        return MasteryEstimate(
            probability=_clip(self._probability(state, skill_id)),
            attempts=attempts,
            enough_data=skill_id in self.skills and attempts >= MIN_EVIDENCE,
        )

    def update(self, state: LearnerState, *, skill_id: str, correct: int) -> LearnerState:
        """Add one answer to the learner's state (in place) and return it."""
        if correct not in (0, 1):
            raise ValueError(f"correct must be 0 or 1, got {correct!r}")
        correct = int(correct)  # a bool would be stored as JSON true/false
        self._update_scores(state, skill_id, correct)
        state.record(skill_id, correct)
        return state

    def predict_sequence(self, responses: Iterable[Response]) -> np.ndarray:
        """P(correct) of each response given only the same student's earlier responses."""
        states: dict[str, LearnerState] = {}
        out = []
        for r in responses:
            state = states.setdefault(r.student_id, LearnerState())
            out.append(self.predict(state, skill_id=r.skill_id).probability)
            self.update(state, skill_id=r.skill_id, correct=r.correct)
        return np.asarray(out, dtype=float)


class SkillAverage(MasteryModel):
    """Baseline: every learner gets the skill's share of correct answers."""

    name = "skill_average"

    @classmethod
    def fit(cls, responses: Sequence[Response]) -> SkillAverage:
        _check(responses)
        prior = sum(r.correct for r in responses) / len(responses)
        return cls(prior=prior, skills=_skill_means(responses))

    def _params(self) -> dict[str, Any]:
        return {"prior": self.prior, "skills": self.skills}

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> SkillAverage:
        return cls(prior=float(params["prior"]), skills=dict(params["skills"]))

    def _probability(self, state: LearnerState, skill_id: str) -> float:
        return self.skills.get(skill_id, self.prior)


def _check(responses: Sequence[Response]) -> None:
    if not responses:
        raise ValueError("cannot fit a mastery model on no responses")


class Elo(MasteryModel):
    """Elo with a global and a per-skill learner rating (Pelánek 2016).

    P(correct) = sigmoid(ability + skill ability - skill difficulty). Fitting runs the
    course log once to learn difficulties; afterwards only the learner's ratings move.
    """

    name = "elo"

    def __init__(
        self,
        *,
        prior: float,
        skills: dict[str, float],
        difficulty: dict[str, float],
        rate: float,
        decay: float,
        skill_rate: float,
    ) -> None:
        super().__init__(prior=prior, skills=skills)
        self.difficulty = difficulty
        self.rate = rate
        self.decay = decay
        self.skill_rate = skill_rate

    def _step(self, attempts: int) -> float:
        # Early answers move a rating a lot, later ones less (the uncertainty function).
        return self.rate / (1.0 + self.decay * attempts)

    @classmethod
    def fit(
        cls,
        responses: Sequence[Response],
        *,
        rate: float = 0.7,
        decay: float = 0.03,
        skill_rate: float = 0.7,
    ) -> Elo:
        _check(responses)
        skills = _skill_means(responses)
        prior = sum(r.correct for r in responses) / len(responses)
        difficulty = {s: -math.log(p / (1.0 - p)) for s, p in skills.items()}
        model = cls(
            prior=prior,
            skills=skills,
            difficulty=difficulty,
            rate=rate,
            decay=decay,
            skill_rate=skill_rate,
        )
        seen = dict.fromkeys(skills, 0)
        states: dict[str, LearnerState] = {}
        for r in responses:
            state = states.setdefault(r.student_id, LearnerState())
            error = r.correct - model._probability(state, r.skill_id)
            model.difficulty[r.skill_id] -= model._step(seen[r.skill_id]) * error
            seen[r.skill_id] += 1
            model.update(state, skill_id=r.skill_id, correct=r.correct)
        return model

    def _params(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "skills": self.skills,
            "difficulty": self.difficulty,
            "rate": self.rate,
            "decay": self.decay,
            "skill_rate": self.skill_rate,
        }

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> Elo:
        return cls(
            prior=float(params["prior"]),
            skills=dict(params["skills"]),
            difficulty=dict(params["difficulty"]),
            rate=float(params["rate"]),
            decay=float(params["decay"]),
            skill_rate=float(params["skill_rate"]),
        )

    def _probability(self, state: LearnerState, skill_id: str) -> float:
        difficulty = self.difficulty.get(skill_id)
        if difficulty is None:
            difficulty = -math.log(self.prior / (1.0 - self.prior))
        ability = state.scores.get("elo", 0.0) + state.scores.get(f"elo:{skill_id}", 0.0)
        return _sigmoid(ability - difficulty)

    def _update_scores(self, state: LearnerState, skill_id: str, correct: int) -> None:
        error = correct - self._probability(state, skill_id)
        key = f"elo:{skill_id}"
        state.scores["elo"] = state.scores.get("elo", 0.0) + self._step(state.attempts) * error
        state.scores[key] = (
            state.scores.get(key, 0.0)
            + self.skill_rate * self._step(state.skill(skill_id).attempts) * error
        )


class LogisticMastery(MasteryModel):
    """Logistic regression on features of the learner's state, fit with scikit-learn."""

    default_c: ClassVar[float] = 1.0

    def __init__(
        self,
        *,
        prior: float,
        skills: dict[str, float],
        intercept: float = 0.0,
        weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__(prior=prior, skills=skills)
        self.intercept = intercept
        self.weights = weights or {}

    def features(self, state: LearnerState, skill_id: str) -> dict[str, float]:
        raise NotImplementedError

    @classmethod
    def fit(cls, responses: Sequence[Response], *, c: float | None = None) -> LogisticMastery:
        # scikit-learn is only needed to fit, which runs in a worker; serving is a dot product.
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression

        _check(responses)
        prior = sum(r.correct for r in responses) / len(responses)
        model = cls(prior=prior, skills=_skill_means(responses))
        states: dict[str, LearnerState] = {}
        rows = []
        for r in responses:
            state = states.setdefault(r.student_id, LearnerState())
            rows.append(model.features(state, r.skill_id))
            model.update(state, skill_id=r.skill_id, correct=r.correct)
        y = np.fromiter((r.correct for r in responses), dtype=int, count=len(responses))
        if y.min() == y.max():
            # One class only: nothing to separate, the prior is the whole model.
            model.intercept = math.log(_clip(prior) / (1.0 - _clip(prior)))
            return model
        vectorizer = DictVectorizer()
        x = vectorizer.fit_transform(rows)
        regression = LogisticRegression(C=c or cls.default_c, max_iter=1000)
        regression.fit(x, y)
        model.intercept = float(regression.intercept_[0])
        model.weights = {
            name: float(w)
            for name, w in zip(vectorizer.get_feature_names_out(), regression.coef_[0], strict=True)
        }
        return model

    def _params(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "skills": self.skills,
            "intercept": self.intercept,
            "weights": self.weights,
        }

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> LogisticMastery:
        return cls(
            prior=float(params["prior"]),
            skills=dict(params["skills"]),
            intercept=float(params["intercept"]),
            weights={k: float(v) for k, v in params["weights"].items()},
        )

    def _probability(self, state: LearnerState, skill_id: str) -> float:
        z = self.intercept
        for name, value in self.features(state, skill_id).items():
            z += self.weights.get(name, 0.0) * value
        return _sigmoid(z)


class PFA(LogisticMastery):
    """Performance factor analysis (Pavlik et al. 2009): per-skill easiness, and per-skill
    weights for the learner's earlier correct and wrong answers on that skill."""

    name = "pfa"
    default_c = 100.0

    def features(self, state: LearnerState, skill_id: str) -> dict[str, float]:
        rec = state.skill(skill_id)
        return {
            f"skill={skill_id}": 1.0,
            f"skill={skill_id}:correct": float(rec.correct),
            f"skill={skill_id}:wrong": float(rec.attempts - rec.correct),
        }


def _mean(values: list[int], last: int) -> float:
    window = values[-last:]
    return sum(window) / len(window) if window else 0.0


def _attempts_bin(attempts: int) -> int:
    """Lower edge of the attempts bucket, so the weight of a count need not be log-linear."""
    for edge in (20, 14, 9, 6, 4, 3, 2, 1):
        if attempts >= edge:
            return edge
    return 0


class BestLR(LogisticMastery):
    """Feature-rich logistic regression in the spirit of Best-LR / DAS3H (Gervet et al.
    2020): skill identity, log counts of earlier attempts and successes on this skill
    (shared and per-skill weights) and overall, recent-window rates, streaks, and the
    learner's performance relative to each skill's difficulty. There is no learner
    identity feature: learners are new to the fit, their evidence is their state."""

    name = "best_lr"
    default_c = 0.03

    def features(self, state: LearnerState, skill_id: str) -> dict[str, float]:
        rec = state.skill(skill_id)
        wrong = rec.attempts - rec.correct
        # Long runs behave alike; capping keeps rare run lengths from getting own weights.
        streak = max(min(rec.streak, 3), -3)
        relative = state.scores.get("residual", 0.0) / (state.attempts + 1.0)
        return {
            f"skill={skill_id}": 1.0,
            f"skill={skill_id}:correct": math.log1p(rec.correct),
            f"skill={skill_id}:wrong": math.log1p(wrong),
            f"skill={skill_id}:streak={streak}": 1.0,
            f"skill={skill_id}:attempts>={_attempts_bin(min(rec.attempts, 8))}": 1.0,
            f"skill={skill_id}:relative": relative,
            f"attempts>={_attempts_bin(rec.attempts)}": 1.0,
            f"streak={max(min(rec.streak, 4), -4)}": 1.0,
            "skill_attempts": math.log1p(rec.attempts),
            "skill_correct": math.log1p(rec.correct),
            "skill_wrong": math.log1p(wrong),
            "skill_first": float(rec.attempts == 0),
            "skill_last1": _mean(rec.recent, 1),
            "skill_last3": _mean(rec.recent, 3),
            "skill_last5": _mean(rec.recent, 5),
            "skill_streak_correct": math.log1p(max(rec.streak, 0)),
            "skill_streak_wrong": math.log1p(max(-rec.streak, 0)),
            "all_attempts": math.log1p(state.attempts),
            "all_correct": math.log1p(state.correct),
            "all_wrong": math.log1p(state.attempts - state.correct),
            "all_rate": (state.correct + self.prior) / (state.attempts + 1.0),
            "all_last1": _mean(state.recent, 1),
            "all_last5": _mean(state.recent, 5),
            "all_last10": _mean(state.recent, 10),
            "same_skill_as_last": float(state.last_skill == skill_id),
            "skills_seen": math.log1p(len(state.skills)),
            "relative": relative,
        }

    def _update_scores(self, state: LearnerState, skill_id: str, correct: int) -> None:
        # How much better than the course average this learner does, skill difficulty aside.
        expected = self.skills.get(skill_id, self.prior)
        state.scores["residual"] = state.scores.get("residual", 0.0) + correct - expected


MODELS: dict[str, type[MasteryModel]] = {
    model.name: model for model in (SkillAverage, Elo, PFA, BestLR)
}
DEFAULT_MODEL = BestLR.name


def mastery_model_fit(*, responses: Sequence[Response], model: str = DEFAULT_MODEL) -> MasteryModel:
    """Fit the named model on a course's time-ordered response log."""
    try:
        cls = MODELS[model]
    except KeyError:
        raise ValueError(f"unknown mastery model {model!r}; choose from {sorted(MODELS)}") from None
    return cls.fit(responses)


def mastery_model_load(*, data: dict[str, Any]) -> MasteryModel:
    """Rebuild a fitted model from its to_dict() form."""
    cls = MODELS.get(data.get("model", ""))
    if cls is None or data.get("version") != 1:
        raise ValueError(f"unsupported mastery model data: {data.get('model')!r}")
    return cls._from_params(data["params"])
