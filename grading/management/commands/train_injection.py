"""Fit the grader-injection classifier on its training set and write its weights.

    python manage.py train_injection

Reads ``grading/data/injection_train.jsonl``, embeds it with the shipped model and writes
``grading/data/injection_classifier.json`` (commit it with the training set: the product
fits in memory whenever the two disagree).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from grading import injection


class Command(BaseCommand):
    help = "Fit the grader-injection classifier and write grading/data/injection_classifier.json."

    def handle(self, *args, **options) -> None:
        texts, labels = injection.training_examples()
        classifier = injection.classifier_fit()
        injection.classifier_save(classifier)
        self.stdout.write(
            f"Fitted on {len(texts)} examples ({int(labels.sum())} injections); "
            f"wrote {injection.CLASSIFIER_FILE}"
        )
