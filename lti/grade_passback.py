"""A released grade is sent back to the LMS it came from (LTI Assignment and Grade
Services): ``LtiConfig.ready()`` connects grading's ``grade_released`` signal here."""

from __future__ import annotations

from grading.models import Review
from grading.signals import grade_released


def _grade_released(sender, review, **kwargs) -> None:
    # Imported on the first released grade: the LTI library is heavy for every process.
    from lti.ags import score_posts_queue

    score_posts_queue(review=review)


def grade_passback_connect() -> None:
    grade_released.connect(_grade_released, sender=Review, dispatch_uid="lti-grade-released")
