"""The learned scorer's training: the essays' stored vectors and the refit on the
teacher's confirmed grades (``cpu`` queue); the scorer itself is :mod:`grading.scoring`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from grading.models import (
    Assignment,
    Proposal,
    Review,
    StoredScorer,
    Submission,
    SubmissionVector,
    rubric_version_of,
)


def submission_vectors(*, submission_ids: Sequence[int], texts: Sequence[str]) -> np.ndarray:
    """:func:`grading.scoring.essay_vectors` of these submissions (``texts[i]`` is the text
    of ``submission_ids[i]``): vectors stored by the current reader are read back, the
    rest are made once and stored. A submission's text never changes (a resubmission is a
    new submission), so a stored vector stays true."""
    from grading.scoring import essay_reader, essay_vectors

    reader = essay_reader()
    stored = dict(
        SubmissionVector.objects.filter(
            submission_id__in=submission_ids, reader=reader
        ).values_list("submission_id", "data")
    )
    missing = [row for row, pk in enumerate(submission_ids) if pk not in stored]
    if missing:
        made = essay_vectors([texts[row] for row in missing])
        made_by_id = {
            submission_ids[row]: vector.tobytes() for row, vector in zip(missing, made, strict=True)
        }
        SubmissionVector.objects.bulk_create(
            [
                SubmissionVector(submission_id=pk, reader=reader, data=data)
                for pk, data in made_by_id.items()
            ],
            update_conflicts=True,
            unique_fields=["submission"],
            update_fields=["reader", "data"],
            batch_size=500,
        )
        stored.update(made_by_id)
    rows = [np.frombuffer(bytes(stored[pk]), dtype=np.float32) for pk in submission_ids]
    width = 2 * settings.EMBEDDING_DIMENSIONS
    return np.vstack(rows) if rows else np.zeros((0, width), dtype=np.float32)


def scorer_train_enqueue(*, assignment_id: int) -> None:
    """Refit the scorer after the commit; if the broker is away, the next confirmed grade
    asks again (a teacher's page never fails for it)."""
    from grading import tasks

    enqueue_on_commit(tasks.scorer_train, assignment_id)


def scorer_train(*, assignment_id: int) -> StoredScorer | None:
    """Refit the assignment's learned scorer on its confirmed grades, if there are enough
    and they changed since the last fit (any essay or score, not only their number); then
    give waiting essays a scorer proposal."""
    from grading.proposals import grading_enqueue  # proposals imports this module
    from grading.scoring import MIN_TRAINING_ESSAYS, scorer_fit

    lock = f"grading:scorer-train:{assignment_id}"
    if not cache.add(lock, 1, timeout=settings.CELERY_TASK_TIME_LIMIT):
        return None  # a fit is running; it will see these grades or a later trigger will
    try:
        assignment = Assignment.objects.get(pk=assignment_id)
        criteria = list(assignment.criteria.all())
        confirmed = assignment.confirmed_scores()
        if len(confirmed) < MIN_TRAINING_ESSAYS:
            return None
        version, digest = rubric_version_of(criteria), confirmed.digest()
        stored = StoredScorer.objects.filter(assignment=assignment).first()
        if stored and stored.rubric_version == version and stored.training_digest == digest:
            return stored
        scorer = scorer_fit(
            criteria=[c.as_scoring_criterion() for c in criteria],
            texts=confirmed.texts,
            scores=confirmed.scores,
            vectors=submission_vectors(
                submission_ids=confirmed.submission_ids, texts=confirmed.texts
            ),
        )
        stored, _created = StoredScorer.objects.update_or_create(
            assignment=assignment,
            defaults={
                "rubric_version": version,
                "data": scorer.to_bytes(),
                "training_size": len(confirmed),
                "training_digest": digest,
                "trained_at": timezone.now(),
            },
        )
    finally:
        cache.delete(lock)
    waiting = Submission.objects.filter(
        assignment=assignment,
        is_current=True,
        review__status__in=[Review.Status.WAITING, Review.Status.PENDING],
    ).exclude(proposals__source=Proposal.Source.SCORER, proposals__rubric_version=version)
    for submission in waiting:
        with transaction.atomic():
            grading_enqueue(submission=submission, sources=[Proposal.Source.SCORER])
    return stored
