"""Measure grader-injection detection: recall on attacks, false positives on essays.

    python manage.py eval_injection [--set FILE] [--essays DIR] [--limit N] [--json]

``--set``: a labelled JSONL set, one ``{"id", "label", "form", "text"}`` per line
(default ``grading/data/injection_eval.jsonl``: essays half of which carry an instruction
to the grader, in wordings and languages that are not in the training set). Prints the
recall on attacks (per form too) and the false-positive rate on ordinary essays.

``--essays``: a directory searched for ``essays.csv`` files (a ``text`` column, e.g.
``../shared/data/essays``, read in place): every essay there is ordinary, so any flag is a
false positive; ``--limit`` takes the first N essays of each file.

Each is reported for the classifier alone (``grading.injection``) and for the detector
the product runs on a submission: the classifier plus the pattern scan
(``grading.manipulation``). The language model's own flag is not part of this measure.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from grading import injection
from grading.manipulation import manipulation_scan


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


class Command(BaseCommand):
    help = "Recall and false-positive rate of grader-injection detection."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--set", default=str(injection.EVALUATION_SET), help="labelled JSONL")
        parser.add_argument("--essays", help="directory of essays.csv files (ordinary essays)")
        parser.add_argument("--limit", type=int, default=0, help="essays per csv file (0: all)")
        parser.add_argument("--threshold", type=float, default=injection.THRESHOLD)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def _detect(self, text: str, threshold: float) -> tuple[bool, bool]:
        """(classifier flags it, the product's detector flags it)."""
        probability, _sentence = injection.injection_probability(text)
        by_meaning = probability >= threshold
        return by_meaning, by_meaning or bool(manipulation_scan(text))

    def handle(self, *args, **options) -> None:
        threshold = options["threshold"]
        started = time.monotonic()
        report: dict = {"threshold": threshold}
        path = Path(options["set"])
        if not path.is_file():
            raise CommandError(f"No labelled set at {path}.")
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        missed = []
        for row in rows:
            meaning, product = self._detect(row["text"], threshold)
            kind = "attack" if row["label"] else "ordinary"
            form = str(row.get("form", "")).split(":")[0]
            for key in (kind, f"{kind}:{form}"):
                counts[key]["n"] += 1
                counts[key]["classifier"] += meaning
                counts[key]["detector"] += product
            if row["label"] and not product:
                missed.append(row.get("id", ""))
        report["labelled_set"] = {
            "file": str(path),
            "essays": len(rows),
            "attacks": counts["attack"]["n"],
            "recall_classifier": _rate(counts["attack"]["classifier"], counts["attack"]["n"]),
            "recall_detector": _rate(counts["attack"]["detector"], counts["attack"]["n"]),
            "false_positive_rate_classifier": _rate(
                counts["ordinary"]["classifier"], counts["ordinary"]["n"]
            ),
            "false_positive_rate_detector": _rate(
                counts["ordinary"]["detector"], counts["ordinary"]["n"]
            ),
            "recall_by_form": {
                key.split(":", 1)[1]: _rate(value["detector"], value["n"])
                for key, value in sorted(counts.items())
                if key.startswith("attack:")
            },
            "missed": missed,
        }
        if options["essays"]:
            report["essays"] = self._essays(Path(options["essays"]), options["limit"], threshold)
        report["seconds"] = round(time.monotonic() - started, 1)
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        self._print(report)

    def _essays(self, directory: Path, limit: int, threshold: float) -> dict:
        files = sorted(directory.rglob("essays.csv"))
        if not files:
            raise CommandError(f"No essays.csv under {directory}.")
        csv.field_size_limit(sys.maxsize)
        per_set, total, flagged_classifier, flagged_detector = {}, 0, 0, 0
        examples: list[str] = []
        for file in files:
            with file.open(encoding="utf-8", newline="") as handle:
                texts = [row["text"] for row in csv.DictReader(handle) if row.get("text")]
            if limit:
                texts = texts[:limit]
            hits_classifier = hits_detector = 0
            for text in texts:
                meaning, product = self._detect(text, threshold)
                hits_classifier += meaning
                hits_detector += product
                if product and len(examples) < 10:
                    _p, sentence = injection.injection_probability(text)
                    examples.append(f"{file.parent.name}: {sentence[:160]}")
            per_set[file.parent.name] = {
                "essays": len(texts),
                "false_positive_rate_classifier": _rate(hits_classifier, len(texts)),
                "false_positive_rate_detector": _rate(hits_detector, len(texts)),
            }
            total += len(texts)
            flagged_classifier += hits_classifier
            flagged_detector += hits_detector
        return {
            "directory": str(directory),
            "essays": total,
            "false_positive_rate_classifier": _rate(flagged_classifier, total),
            "false_positive_rate_detector": _rate(flagged_detector, total),
            "by_set": per_set,
            "flagged_examples": examples,
        }

    def _print(self, report: dict) -> None:
        write = self.stdout.write
        labelled = report["labelled_set"]
        write(
            f"Labelled set {labelled['file']}: {labelled['essays']} essays, "
            f"{labelled['attacks']} with an attack (threshold {report['threshold']})"
        )
        write(
            f"  recall:              classifier {labelled['recall_classifier']}, "
            f"detector {labelled['recall_detector']}"
        )
        write(
            f"  false-positive rate: classifier {labelled['false_positive_rate_classifier']}, "
            f"detector {labelled['false_positive_rate_detector']}"
        )
        for form, recall in labelled["recall_by_form"].items():
            write(f"    recall {form:<12} {recall}")
        if labelled["missed"]:
            write(f"  missed: {', '.join(labelled['missed'])}")
        if "essays" in report:
            essays = report["essays"]
            write(f"Ordinary essays under {essays['directory']}: {essays['essays']}")
            write(
                f"  false-positive rate: classifier {essays['false_positive_rate_classifier']}, "
                f"detector {essays['false_positive_rate_detector']}"
            )
            for name, row in essays["by_set"].items():
                write(
                    f"    {name:<12} {row['essays']:>6} essays: "
                    f"classifier {row['false_positive_rate_classifier']}, "
                    f"detector {row['false_positive_rate_detector']}"
                )
            for example in essays["flagged_examples"]:
                write(f"    flagged: {example}")
        write(f"({report['seconds']} s)")
