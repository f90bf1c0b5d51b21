"""Measure a mastery model on a response log: fit on one file, predict another.

Each TEST response is predicted from the same student's earlier TEST responses only,
through the same LearnerState path the product uses after every answer.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from learning.mastery import DEFAULT_MODEL, MODELS, Response, mastery_model_fit

COLUMNS = ("student_id", "skill_id", "correct")


def responses_read(path: Path) -> list[Response]:
    """Rows of a ``student_id,skill_id,correct`` CSV; CommandError names file and line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise CommandError(f"{path}: empty file, expected a header {','.join(COLUMNS)}")
            names = [name.strip() for name in header]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise CommandError(f"{path}:1: missing column(s) {', '.join(missing)}")
            index = [names.index(c) for c in COLUMNS]
            responses = []
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(names):
                    raise CommandError(
                        f"{path}:{line}: expected {len(names)} fields, found {len(row)}"
                    )
                student, skill, correct = (row[i].strip() for i in index)
                if not student or not skill:
                    raise CommandError(f"{path}:{line}: empty student_id or skill_id")
                if correct not in ("0", "1"):
                    raise CommandError(f"{path}:{line}: correct must be 0 or 1, got {correct!r}")
                responses.append(Response(student, skill, int(correct)))
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path}: not a UTF-8 CSV file: {exc}") from exc
    if not responses:
        raise CommandError(f"{path}: no responses after the header")
    return responses


def _metrics(responses: list[Response], probabilities: np.ndarray) -> dict[str, Any]:
    y = np.fromiter((r.correct for r in responses), dtype=int, count=len(responses))
    # AUC is undefined when the test log holds only one class; the others still mean something.
    auc = float(roc_auc_score(y, probabilities)) if y.min() != y.max() else None
    return {
        "auc": auc,
        "rmse": math.sqrt(float(mean_squared_error(y, probabilities))),
        "log_loss": float(log_loss(y, probabilities, labels=[0, 1])),
    }


def _describe(responses: list[Response]) -> dict[str, int]:
    return {
        "responses": len(responses),
        "students": len({r.student_id for r in responses}),
        "skills": len({r.skill_id for r in responses}),
    }


class Command(BaseCommand):
    help = (
        "Fit a mastery model on TRAIN and report AUC, RMSE and log loss of predicting each "
        "TEST response from that student's earlier TEST responses."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", required=True, type=Path, help="CSV to fit on")
        parser.add_argument("--test", required=True, type=Path, help="CSV to predict")
        parser.add_argument(
            "--model",
            choices=sorted(MODELS),
            default=DEFAULT_MODEL,
            help=f"which model to measure (default: {DEFAULT_MODEL}, the product's)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        train = responses_read(Path(options["train"]))
        test = responses_read(Path(options["test"]))
        started = time.monotonic()
        model = mastery_model_fit(responses=train, model=options["model"])
        fitted = time.monotonic()
        probabilities = model.predict_sequence(test)
        result = {
            "model": options["model"],
            "train": _describe(train),
            "test": _describe(test),
            **_metrics(test, probabilities),
            "fit_seconds": round(fitted - started, 2),
            "predict_seconds": round(time.monotonic() - fitted, 2),
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        auc = "n/a (one class)" if result["auc"] is None else f"{result['auc']:.4f}"
        self.stdout.write(
            f"model {result['model']}: fit on {result['train']['responses']} responses "
            f"({result['train']['students']} students, {result['train']['skills']} skills) "
            f"in {result['fit_seconds']} s\n"
            f"test: {result['test']['responses']} responses, "
            f"{result['test']['students']} students\n"
            f"AUC {auc}\nRMSE {result['rmse']:.4f}\nlog loss {result['log_loss']:.4f}"
        )
