"""A learner's essay, from upload to a saved submission.

The flow of essay grading, with the teacher in charge: a learner submits (here) → the
submission is scanned for grader-directed content and gets a ``Review`` → proposals are
created (:mod:`grading.proposals`: one per source, the language model when one is
configured and the learner's consent allows it, the learned scorer when one is trained)
and their tasks enqueued on commit → each finished proposal refreshes the review's
priority → the teacher approves, edits or overrides each criterion (every change audited),
or bulk-approves the confident ones → releases (:mod:`grading.reviews`) → the learner may
ask for a regrade, which puts the essay back in the queue. Confirmed grades are
``CriterionScore`` rows, the training data of the learned scorer, which is refitted on the
``cpu`` queue (:mod:`grading.training`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grading import manipulation
from grading.models import (
    Assignment,
    Review,
    Submission,
)
from grading.proposals import grading_enqueue
from grading.reviews import PRIORITY_FLAG
from material.parsing import ParseError, document_parse

if TYPE_CHECKING:
    from learners.models import User


ESSAY_MAX_WORDS = 60_000

_UPLOAD_KINDS = {".txt", ".docx", ".pdf"}


@dataclass(frozen=True)
class UploadedEssay:
    text: str
    # Passages formatted to be invisible in the file (hidden, white or tiny font).
    hidden: list[str]


def submission_upload_read(*, name: str, data: bytes) -> UploadedEssay:
    """The text of an uploaded essay (.txt, .docx or .pdf), read by the project's one
    upload parser (``material.parsing``), and the passages the file hides from view."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in _UPLOAD_KINDS:
        raise ValidationError(_("Upload a .txt, .docx or .pdf file."))
    try:
        document = document_parse(name=name, data=data)
    except ParseError as error:
        raise ValidationError(str(error)) from None
    return UploadedEssay(text=document.text, hidden=list(document.hidden))


def submission_text_from_upload(*, name: str, data: bytes) -> str:
    """The text alone of an uploaded essay (:func:`submission_upload_read`)."""
    return submission_upload_read(name=name, data=data).text


def word_count(text: str) -> int:
    return len(text.split())


def submission_check_allowed(*, assignment: Assignment, learner: User, now=None) -> None:
    """Raise ValidationError when the assignment's policy refuses a submission now."""
    now = now or timezone.now()
    policy = assignment.resubmission_policy
    has_one = Submission.objects.filter(assignment=assignment, learner=learner).exists()
    if has_one and policy == Assignment.ResubmissionPolicy.NONE:
        raise ValidationError(_("This assignment accepts one submission only."))
    past_due = assignment.due_at is not None and now > assignment.due_at
    if past_due and policy != Assignment.ResubmissionPolicy.ANY_TIME:
        raise ValidationError(_("The due date has passed; submissions are closed."))


def submission_scan(*, text: str, hidden: Sequence[str] = ()) -> list[manipulation.Finding]:
    """Every sign that the essay addresses its grader: patterns (delimiters, fake scores,
    known phrases, invisible characters), instructions found by meaning in any wording or
    language (:mod:`grading.injection`, one sentence is enough), and passages the uploaded
    file hid from view."""
    from grading.injection import injection_scan

    findings = manipulation.manipulation_scan(text)
    if not any(finding.code == "instructions" for finding in findings):
        by_meaning = injection_scan(manipulation.invisible_characters_remove(text))
        if by_meaning is not None:
            findings.append(by_meaning)
    if hidden:
        findings.insert(0, manipulation.hidden_passages_finding(list(hidden)))
    return findings


def submission_submit(
    *, assignment: Assignment, learner: User, text: str, hidden: Sequence[str] = ()
) -> Submission:
    """Save the learner's essay as the current submission (earlier ones are kept) and
    queue its grading once the transaction commits. ``hidden``: passages the uploaded
    file hid from view (:func:`submission_upload_read`), flagged and marked for the
    teacher. The essay is scanned before any row is locked: reading it takes a moment."""
    if "\x00" in text:
        raise ValidationError(
            _(
                "The essay contains a NUL character, an invisible control character that "
                "sometimes comes with copied text. Remove it and submit again."
            )
        )
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise ValidationError(_("The essay is empty."))
    if word_count(text) > ESSAY_MAX_WORDS:
        raise ValidationError(_("The essay is longer than %(n)d words.") % {"n": ESSAY_MAX_WORDS})
    submission_check_allowed(assignment=assignment, learner=learner)
    findings = submission_scan(text=text, hidden=hidden)
    return _submission_save(assignment=assignment, learner=learner, text=text, findings=findings)


@transaction.atomic
def _submission_save(*, assignment: Assignment, learner: User, text: str, findings) -> Submission:
    # Serialise one learner's submissions to one assignment (double clicks, two tabs).
    get_user_model().objects.select_for_update().filter(pk=learner.pk).first()
    submission_check_allowed(assignment=assignment, learner=learner)
    Submission.objects.filter(assignment=assignment, learner=learner, is_current=True).update(
        is_current=False
    )
    submission = Submission.objects.create(assignment=assignment, learner=learner, text=text)
    Review.objects.create(
        submission=submission,
        flagged=bool(findings),
        flags=[finding.as_dict() for finding in findings],
        priority=PRIORITY_FLAG if findings else 0.0,
    )
    grading_enqueue(submission=submission)
    return submission
