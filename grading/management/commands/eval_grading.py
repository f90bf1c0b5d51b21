"""Measure the learned scorer against teachers' scores on an essay set.

    python manage.py eval_grading DATASET_DIR [--folds 5] [--json]
    python manage.py eval_grading --train DIR --test DIR [--json]

A set is a directory with ``essays.csv`` and ``rubric.json`` (the layout of
``shared/data/essays/<set>/``). The essays are imported as a scored assignment of a
temporary course, read back the way the product reads confirmed grades, and scored by the
production scorer in k-fold cross-validation (or trained on one set and tested on
another), beside a plain TF-IDF + length ridge baseline. The course, its learners and
everything under them are deleted at the end, also when the run fails.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from config.schema import schema_migrate_pending
from grading.evaluation import (
    FAIRNESS_MIN_N,
    FAIRNESS_REQUIRED_N,
    FAIRNESS_SMD_LIMIT,
    DatasetError,
    EssayDataset,
    cross_validate,
    dataset_load,
    evaluation_report,
    train_test_predict,
)
from grading.models import Assignment, CriterionScore, RubricCriterion, Submission
from grading.scoring import essay_vectors
from learners.models import Course, Membership

IMPORT_BATCH = 1000


class Command(BaseCommand):
    help = "Cross-validate the learned essay scorer on a scored essay set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", nargs="?", help="directory with essays.csv, rubric.json")
        parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
        parser.add_argument("--train", help="train on this set (with --test)")
        parser.add_argument("--test", help="score this set (with --train)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the fold split")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        dataset, train, test = options["dataset"], options["train"], options["test"]
        if bool(train) != bool(test):
            raise CommandError("--train and --test go together.")
        if dataset and train:
            raise CommandError("Give either DATASET_DIR or --train and --test, not both.")
        if not dataset and not train:
            raise CommandError("Give DATASET_DIR, or --train DIR and --test DIR.")
        if options["folds"] < 2:
            raise CommandError("--folds must be at least 2.")
        self.as_json = options["json"]
        started = time.monotonic()
        try:
            if dataset:
                result = self._cross_validate(dataset, options["folds"], options["seed"])
            else:
                result = self._train_test(train, test)
        except DatasetError as error:
            raise CommandError(str(error)) from error
        result["seconds"] = round(time.monotonic() - started, 1)
        if self.as_json:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self._print_report(result)

    def _note(self, message: str) -> None:
        if not self.as_json:
            self.stderr.write(message)

    def _load(self, directory: str) -> EssayDataset:
        dataset = dataset_load(directory)
        schema_migrate_pending(self)  # a set that loads is stored next
        self._note(f"{dataset.name}: {len(dataset)} essays, {len(dataset.criteria)} criteria")
        return dataset

    def _cross_validate(self, directory: str, folds: int, seed: int) -> dict:
        dataset = self._load(directory)
        if folds > len(dataset):
            raise CommandError(f"--folds {folds} is more than the {len(dataset)} essays.")
        with _TemporaryAssignment(dataset) as stored:
            self._note("reading the essays with the embedding model ...")
            vectors = essay_vectors(stored.texts)
            predictions = cross_validate(
                stored,
                vectors,
                folds=folds,
                random_state=seed,
                progress=lambda fold: self._note(f"fold {fold}/{folds} done"),
            )
        report = evaluation_report(stored, predictions)
        return {"mode": "cross-validation", "folds": folds, "seed": seed, **report}

    def _train_test(self, train_directory: str, test_directory: str) -> dict:
        train, test = self._load(train_directory), self._load(test_directory)
        with _TemporaryAssignment(train) as stored_train, _TemporaryAssignment(test) as stored:
            self._note("reading the essays with the embedding model ...")
            predictions = train_test_predict(
                stored_train,
                essay_vectors(stored_train.texts),
                stored,
                essay_vectors(stored.texts),
            )
        report = evaluation_report(stored, predictions)
        return {"mode": "train-test", "train": train.name, **report}

    def _print_report(self, result: dict) -> None:
        heading = f"{result['dataset']} ({result['title']}): {result['essays']} essays, "
        if result["mode"] == "cross-validation":
            heading += f"{result['folds']}-fold cross-validation"
        else:
            heading += f"trained on {result['train']}"
        self.stdout.write(heading)
        self.stdout.write(
            f"{'criterion':<14}{'':>9}{'QWK':>7}{'exact':>8}{'adjacent':>10}{'SMD':>8}"
        )
        for row in result["criteria"]:
            for label in ("scorer", "baseline"):
                metrics = row[label]
                self.stdout.write(
                    f"{row['criterion'] if label == 'scorer' else '':<14}{label:>9}"
                    f"{metrics['qwk']:>7.3f}{metrics['exact']:>8.3f}{metrics['adjacent']:>10.3f}"
                    f"{_number(metrics['smd']):>8}"
                )
            calibration = row["calibration"]
            self.stdout.write(
                f"{'':<14}confidence: mean {calibration['mean_confidence']:.3f} vs exact "
                f"{calibration['exact_rate']:.3f}, Brier {calibration['brier']:.3f}, "
                f"ECE {calibration['ece']:.3f}"
            )
            for group in row["fairness"]:
                verdict = {True: "ok", False: "MISSES", None: "n/a"}[group["meets"]]
                if not group["required"]:
                    verdict += f" (n < {FAIRNESS_REQUIRED_N}, not required)"
                self.stdout.write(
                    f"{'':<14}group {group['group']}={group['value']} (n={group['n']}): "
                    f"SMD {_number(group['smd'])} {verdict}"
                )
        self.stdout.write(
            f"mean QWK: scorer {result['mean_qwk']:.3f}, baseline {result['baseline_mean_qwk']:.3f}"
        )
        misses = [
            f"{r['criterion']}: {m}" for r in result["criteria"] for m in r["fairness_misses"]
        ]
        if misses:
            self.stdout.write(
                f"Fairness: |SMD| > {FAIRNESS_SMD_LIMIT} for " + "; ".join(misses) + "."
            )
        elif any(row["fairness"] for row in result["criteria"]):
            self.stdout.write(
                f"Fairness: every group of {FAIRNESS_REQUIRED_N}+ essays within "
                f"|SMD| <= {FAIRNESS_SMD_LIMIT}."
            )
        else:
            self.stdout.write(f"Fairness: no group column with {FAIRNESS_MIN_N}+ essays per value.")
        self.stdout.write(f"({result['seconds']} s)")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


class _TemporaryAssignment:
    """Imports an essay set as a scored assignment of a throwaway course and yields the set
    as read back from the database; deletes the course and its learners on exit."""

    def __init__(self, dataset: EssayDataset) -> None:
        self.dataset = dataset
        self.tag = f"eval-grading-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> EssayDataset:
        try:
            return self._import()
        except BaseException:
            self.__exit__()
            raise

    def _import(self) -> EssayDataset:
        dataset = self.dataset
        with transaction.atomic():
            self.course = Course.objects.create(
                title=f"Evaluation of {dataset.name}", slug=self.tag
            )
            assignment = Assignment.objects.create(
                course=self.course,
                title=dataset.title,
                resubmission_policy=Assignment.ResubmissionPolicy.NONE,
            )
            criteria = RubricCriterion.objects.bulk_create(
                RubricCriterion(
                    assignment=assignment,
                    position=position,
                    name=criterion.name,
                    min_score=Decimal(str(criterion.min)),
                    max_score=Decimal(str(criterion.max)),
                    step=Decimal(str(criterion.step)),
                )
                for position, criterion in enumerate(dataset.criteria)
            )
            user_model = get_user_model()
            learners = user_model.objects.bulk_create(
                [
                    user_model(
                        username=f"{self.tag}-{index}",
                        password=make_password(None),
                        is_active=False,
                    )
                    for index in range(len(dataset))
                ],
                batch_size=IMPORT_BATCH,
            )
            Membership.objects.bulk_create(
                [
                    Membership(user=learner, course=self.course, role=Membership.Role.STUDENT)
                    for learner in learners
                ],
                batch_size=IMPORT_BATCH,
            )
            submissions = Submission.objects.bulk_create(
                [
                    Submission(assignment=assignment, learner=learner, text=text)
                    for learner, text in zip(learners, dataset.texts, strict=True)
                ],
                batch_size=IMPORT_BATCH,
            )
            CriterionScore.objects.bulk_create(
                [
                    CriterionScore(
                        submission=submission,
                        criterion=criterion,
                        score=Decimal(str(dataset.scores[criterion.name][index])),
                    )
                    for index, submission in enumerate(submissions)
                    for criterion in criteria
                ],
                batch_size=IMPORT_BATCH,
            )
        confirmed = assignment.confirmed_scores()
        if len(confirmed) != len(dataset):
            raise CommandError(
                f"Imported {len(dataset)} essays but read back {len(confirmed)} scored ones."
            )
        # confirmed_scores() returns submissions in insertion order, so group labels
        # (which the product does not store) still line up with the essays.
        return EssayDataset(
            name=dataset.name,
            title=dataset.title,
            criteria=assignment.scoring_criteria(),
            essay_ids=dataset.essay_ids,
            texts=confirmed.texts,
            scores={
                name: np.asarray(values, dtype=float) for name, values in confirmed.scores.items()
            },
            groups=dataset.groups,
        )

    def __exit__(self, *exc_info) -> None:
        with transaction.atomic():
            Course.objects.filter(slug=self.tag).delete()
            get_user_model().objects.filter(username__startswith=f"{self.tag}-").delete()
