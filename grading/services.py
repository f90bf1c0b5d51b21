"""Write use cases of essay grading, with the teacher in charge.

Flow: a learner submits → the submission is scanned for grader-directed content and gets a
``Review`` → proposals are created (one per source: the language model when one is
configured and the learner's consent allows it, the learned scorer when one is trained)
and their tasks enqueued on commit → each finished proposal refreshes the review's
priority → the teacher approves, edits or overrides each criterion (every change audited),
or bulk-approves the confident ones → releases → the learner may ask for a regrade, which
puts the essay back in the queue. Confirmed grades are ``CriterionScore`` rows, the
training data of the learned scorer, which is refitted on the ``cpu`` queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.budget import ai_budget_reached
from config.celery import enqueue_on_commit
from config.leases import lapsed, lease_until, queued_until
from config.metrics import grading_observed
from grading import manipulation
from grading.models import (
    Assignment,
    CriterionScore,
    Exemplar,
    Proposal,
    RegradeRequest,
    Review,
    RubricCriterion,
    StoredScorer,
    Submission,
    SubmissionVector,
    rubric_version_of,
)
from grading.notices import release_notice_send
from grading.signals import grade_released
from learners.audit import audit_record
from learners.evidence import mastery_evidence_record
from learners.models import AuditEvent, MasteryEvidence

logger = logging.getLogger(__name__)

ESSAY_MAX_WORDS = 60_000
COMMENT_MAX_CHARS = 4000
# Review priority weights: a flag outranks everything, then an open regrade request, then
# disagreement between the two sources (in rubric steps), then low confidence.
PRIORITY_FLAG = 100.0
PRIORITY_REGRADE = 50.0
PRIORITY_PER_STEP_OF_DISAGREEMENT = 5.0
PRIORITY_UNCERTAINTY = 10.0
# A proposal claimed before leases existed, whose worker vanished, is claimable again
# after this long (one with a lease is as soon as its lease lapses).
STALE_RUNNING = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
WORKER_DIED_ERROR = "WorkerLost: the worker grading this essay stopped too many times"


# --- rubric ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionSpec:
    name: str
    min_score: Decimal
    max_score: Decimal
    step: Decimal
    level_descriptors: dict[str, str]


def _decimal(value: Any, *, field: str, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(
            _("Criterion “%(name)s”: %(field)s must be a number.") % {"name": name, "field": field}
        ) from None
    if not number.is_finite():
        raise ValidationError(
            _("Criterion “%(name)s”: %(field)s must be a number.") % {"name": name, "field": field}
        )
    return number


def rubric_parse(*, data: Any) -> tuple[list[CriterionSpec], list[dict]]:
    """Criteria and exemplars from rubric JSON, with a clear message for what is wrong.

    Format: ``{"criteria": [{"name", "min", "max", "step", "levels": {"<score>": "..."}}],
    "exemplars": [{"text", "scores": {"<criterion name>": score}}]}``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("criteria"), list):
        raise ValidationError(_("The rubric needs a list of criteria."))
    if not data["criteria"]:
        raise ValidationError(_("The rubric has no criteria: add at least one."))
    specs: list[CriterionSpec] = []
    for index, entry in enumerate(data["criteria"], start=1):
        if not isinstance(entry, dict):
            raise ValidationError(_("Criterion %(n)d is not an object.") % {"n": index})
        name = str(entry.get("name") or "").strip()
        if not name:
            raise ValidationError(_("Criterion %(n)d has no name.") % {"n": index})
        if len(name) > 100:
            raise ValidationError(_("Criterion %(n)d's name is too long.") % {"n": index})
        low = _decimal(entry.get("min", 0), field="min", name=name)
        high = _decimal(entry.get("max"), field="max", name=name)
        step = _decimal(entry.get("step", 1), field="step", name=name)
        if low < 0 or high < 0:
            raise ValidationError(
                _("Criterion “%(name)s”: points cannot be negative.") % {"name": name}
            )
        if high <= low:
            raise ValidationError(
                _("Criterion “%(name)s”: the highest score must be above the lowest.")
                % {"name": name}
            )
        if step <= 0:
            raise ValidationError(
                _("Criterion “%(name)s”: the step must be positive.") % {"name": name}
            )
        if (high - low) % step:
            raise ValidationError(
                _("Criterion “%(name)s”: the range must be a whole number of steps.")
                % {"name": name}
            )
        if max(abs(low), abs(high)) >= 10_000:
            raise ValidationError(_("Criterion “%(name)s”: too many points.") % {"name": name})
        levels = entry.get("levels") or entry.get("level_descriptors") or {}
        if not isinstance(levels, dict):
            raise ValidationError(
                _("Criterion “%(name)s”: levels must map scores to descriptions.") % {"name": name}
            )
        specs.append(
            CriterionSpec(
                name=name,
                min_score=low,
                max_score=high,
                step=step,
                level_descriptors={str(k): str(v) for k, v in levels.items()},
            )
        )
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValidationError(_("Two criteria have the same name."))
    exemplars = data.get("exemplars") or []
    if not isinstance(exemplars, list):
        raise ValidationError(_("Exemplars must be a list."))
    checked: list[dict] = []
    for index, exemplar in enumerate(exemplars, start=1):
        if not isinstance(exemplar, dict) or not str(exemplar.get("text") or "").strip():
            raise ValidationError(_("Exemplar %(n)d has no text.") % {"n": index})
        scores = exemplar.get("scores") or {}
        if not isinstance(scores, dict) or set(scores) - set(names):
            raise ValidationError(
                _("Exemplar %(n)d scores criteria the rubric does not have.") % {"n": index}
            )
        checked.append({"text": str(exemplar["text"]), "scores": scores})
    return specs, checked


@transaction.atomic
def assignment_create(
    *,
    course,
    title: str,
    prompt: str = "",
    due_at=None,
    resubmission_policy: str = Assignment.ResubmissionPolicy.UNTIL_DUE,
    rubric: Any,
) -> Assignment:
    specs, exemplars = rubric_parse(data=rubric)
    if not title.strip():
        raise ValidationError(_("The assignment needs a title."))
    assignment = Assignment.objects.create(
        course=course,
        title=title.strip(),
        prompt=prompt,
        due_at=due_at,
        resubmission_policy=resubmission_policy,
    )
    RubricCriterion.objects.bulk_create(
        RubricCriterion(
            assignment=assignment,
            position=position,
            name=spec.name,
            min_score=spec.min_score,
            max_score=spec.max_score,
            step=spec.step,
            level_descriptors=spec.level_descriptors,
        )
        for position, spec in enumerate(specs)
    )
    Exemplar.objects.bulk_create(
        Exemplar(assignment=assignment, text=e["text"], scores=e["scores"], position=position)
        for position, e in enumerate(exemplars)
    )
    return assignment


def rubric_export(*, assignment: Assignment) -> dict[str, Any]:
    """The rubric as JSON that ``rubric_parse`` reads back."""
    return {
        "title": assignment.title,
        "prompt": assignment.prompt,
        "criteria": [
            {
                "name": c.name,
                "min": float(c.min_score),
                "max": float(c.max_score),
                "step": float(c.step),
                "levels": c.level_descriptors,
            }
            for c in assignment.criteria.all()
        ],
        "exemplars": [{"text": e.text, "scores": e.scores} for e in assignment.exemplars.all()],
    }


# --- submissions -----------------------------------------------------------------------

_UPLOAD_KINDS = {".txt", ".docx", ".pdf"}


@dataclass(frozen=True)
class UploadedEssay:
    text: str
    # Passages formatted to be invisible in the file (hidden, white or tiny font).
    hidden: list[str]


def submission_upload_read(*, name: str, data: bytes) -> UploadedEssay:
    """The text of an uploaded essay (.txt, .docx or .pdf), read by the project's one
    upload parser (``material.parsing``), and the passages the file hides from view."""
    from material.parsing import ParseError, document_parse

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


def submission_check_allowed(*, assignment: Assignment, learner, now=None) -> None:
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
    *, assignment: Assignment, learner, text: str, hidden: Sequence[str] = ()
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
def _submission_save(*, assignment: Assignment, learner, text: str, findings) -> Submission:
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


def grading_sources(*, submission: Submission) -> list[str]:
    """Which proposals this submission gets: the LLM (configured, allowed by consent and
    within the learner's AI token budget for today) and the learned scorer (when one is
    trained for this rubric)."""
    from learners.consent import ai_access
    from tutor.llm import llm_is_configured

    assignment = submission.assignment
    learner, course = submission.learner, assignment.course
    sources = []
    if (
        llm_is_configured()
        and ai_access(user=learner, course=course).allowed
        and not ai_budget_reached(user=learner, course=course)
    ):
        sources.append(Proposal.Source.LLM)
    version = rubric_version_of(assignment.criteria.all())
    if StoredScorer.objects.filter(assignment=assignment, rubric_version=version).exists():
        sources.append(Proposal.Source.SCORER)
    return sources


def grading_enqueue(*, submission: Submission, sources: list[str] | None = None) -> list[Proposal]:
    """Create the proposals (at most one per source and rubric version) and enqueue their
    tasks on commit. Calling it again finds the same rows and enqueues nothing new for
    proposals already done."""
    from grading import tasks

    if sources is None:
        sources = grading_sources(submission=submission)
    version = rubric_version_of(submission.assignment.criteria.all())
    proposals = []
    for source in sources:
        proposal, _created = Proposal.objects.get_or_create(
            submission=submission, rubric_version=version, source=source
        )
        proposals.append(proposal)
        if proposal.status == Proposal.Status.QUEUED:
            Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.QUEUED).update(
                lease_until=queued_until()
            )
            tasks.proposal_enqueue(source=source, proposal_id=proposal.pk)
    return proposals


def _abandoned(now: datetime) -> Q:
    """Proposals being graded by a worker that died: the lease lapsed (or, claimed before
    leases existed, the claim is older than the task time limit)."""
    return Q(status=Proposal.Status.RUNNING) & (
        lapsed(now=now) | Q(lease_until__isnull=True, started_at__lt=now - STALE_RUNNING)
    )


def _fail_if_it_kills_workers(*, proposal_id: int, now: datetime) -> bool:
    killed = (
        Proposal.objects.filter(_abandoned(now), pk=proposal_id)
        .filter(attempts__gte=settings.WORK_MAX_ATTEMPTS)
        .exists()
    )
    if killed:
        logger.error("proposal %s failed: its worker died on it too often", proposal_id)
        proposal_fail(proposal_id=proposal_id, error=WORKER_DIED_ERROR)
    return killed


def proposals_recover() -> int:
    """Queue again the proposals whose worker died (lease lapsed while running) or whose
    task message seems lost (still queued after its lease); returns how many.

    Each goes back with a conditional update, so a worker that took it over meanwhile
    keeps it; one whose workers died on it too often is failed for the teacher instead.
    """
    from grading import tasks

    now = timezone.now()
    lost = Q(status=Proposal.Status.QUEUED) & (lapsed(now=now) | Q(lease_until__isnull=True))
    candidates = Proposal.objects.filter(lost | _abandoned(now)).values_list(
        "pk", "source", "status", "started_at"
    )
    requeued = 0
    for pk, source, status, started_at in candidates:
        if _fail_if_it_kills_workers(proposal_id=pk, now=now):
            continue
        with transaction.atomic():
            if Proposal.objects.filter(lost | _abandoned(now), pk=pk, started_at=started_at).update(
                status=Proposal.Status.QUEUED, lease_until=queued_until(now=now)
            ):
                logger.warning("proposal %s was %s with no live worker; queued again", pk, status)
                tasks.proposal_enqueue(source=source, proposal_id=pk)
                requeued += 1
    return requeued


def proposal_claim(*, proposal_id: int) -> datetime | None:
    """Take a queued proposal (or one whose worker died) for this worker; returns the
    claim's token (its ``started_at``), or None when there is nothing to take. A proposal
    whose workers died on it ``WORK_MAX_ATTEMPTS`` times is failed instead."""
    now = timezone.now()
    claimable = Q(status=Proposal.Status.QUEUED) | (
        _abandoned(now) & Q(attempts__lt=settings.WORK_MAX_ATTEMPTS)
    )
    if Proposal.objects.filter(claimable, pk=proposal_id).update(
        status=Proposal.Status.RUNNING,
        started_at=now,
        lease_until=lease_until(now=now),
        attempts=F("attempts") + 1,
    ):
        return now
    _fail_if_it_kills_workers(proposal_id=proposal_id, now=now)
    return None


def proposal_claimed(*, proposal_id: int, claimed_at: datetime):
    """The proposal while this worker's claim holds (for its lease, ``config/leases.py``)."""
    return Proposal.objects.filter(
        pk=proposal_id, status=Proposal.Status.RUNNING, started_at=claimed_at
    )


def proposal_requeue(*, proposal_id: int, error: str, delay: float = 0.0) -> None:
    """Back to the queue for a retry in ``delay`` seconds (the task's countdown)."""
    Proposal.objects.filter(pk=proposal_id, status=Proposal.Status.RUNNING).update(
        status=Proposal.Status.QUEUED, error=error[:2000], lease_until=queued_until(delay=delay)
    )


def proposal_fail(*, proposal_id: int, error: str) -> None:
    failed = (
        Proposal.objects.filter(pk=proposal_id)
        .exclude(status=Proposal.Status.DONE)
        .update(
            status=Proposal.Status.FAILED,
            error=error[:2000],
            finished_at=timezone.now(),
            lease_until=None,
        )
    )
    proposal = Proposal.objects.select_related("submission").get(pk=proposal_id)
    if failed:
        _grading_observed(proposal, outcome="failed")
    review_refresh(submission=proposal.submission)


def _grading_observed(proposal: Proposal, *, outcome: str) -> None:
    """Grading throughput for ``/metrics``: the time from the proposal's last claim (or
    its creation, when no worker ever claimed it) to its end."""
    began = proposal.started_at or proposal.created_at
    grading_observed(
        source=proposal.source,
        outcome=outcome,
        seconds=max(0.0, (timezone.now() - began).total_seconds()),
    )


def proposal_retry(*, proposal: Proposal) -> Proposal:
    """Queue a failed proposal again (the teacher's "try again")."""
    if proposal.status == Proposal.Status.FAILED:
        Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.FAILED).update(
            status=Proposal.Status.QUEUED, error="", attempts=0
        )
        proposal.refresh_from_db()
        grading_enqueue(submission=proposal.submission, sources=[proposal.source])
    return proposal


def proposal_run_llm(*, proposal_id: int, retry: int = 0) -> Proposal:
    """Grade a claimed proposal with the language model (``retry``: how many times the task
    tried before). LLM errors propagate; the task decides whether to retry."""
    from grading.llm_grading import essay_grade

    proposal = Proposal.objects.select_related("submission__assignment", "submission__learner").get(
        pk=proposal_id
    )
    submission = proposal.submission
    assignment = submission.assignment
    result = essay_grade(
        assignment=assignment,
        criteria=list(assignment.criteria.all()),
        exemplars=list(assignment.exemplars.all()),
        text=submission.text,
        language=submission.learner.preferred_language,
        learner_id=submission.learner_id,
        retry=retry,
    )
    flag = None
    if result.grader_directed:
        flag = manipulation.Finding(
            "llm_flag",
            _("The language model reports text addressed to the grader."),
            " … ".join(result.grader_directed)[:300],
            tuple(result.grader_directed),
        )
    return _proposal_finish(
        proposal=proposal,
        flag=flag,
        criteria=result.criteria,
        feedback=result.feedback,
        dropped_quotes=result.dropped_quotes,
        notice=result.notice,
        model_name=result.model_name,
        prompt_version=result.usage.get("prompt_version", ""),
        usage=result.usage,
    )


@lru_cache(maxsize=8)
def _scorer_load(stored_id: int, trained_at: str):
    """A stored scorer, loaded once per worker process and fit (``trained_at`` changes
    with every refit, so a stale one is never used)."""
    from grading.scoring import EssayScorer

    return EssayScorer.from_bytes(bytes(StoredScorer.objects.get(pk=stored_id).data))


def proposal_run_scorer(*, proposal_id: int) -> Proposal:
    proposal = Proposal.objects.select_related("submission__assignment").get(pk=proposal_id)
    assignment = proposal.submission.assignment
    stored = StoredScorer.objects.defer("data").get(assignment=assignment)
    scorer = _scorer_load(stored.pk, stored.trained_at.isoformat())
    submission = proposal.submission
    vectors = submission_vectors(submission_ids=[submission.pk], texts=[submission.text])
    prediction = scorer.predict([submission.text], vectors=vectors)[0]
    criteria = {}
    for criterion in assignment.criteria.all():
        estimate = prediction.get(criterion.name)
        if estimate is None:
            continue
        criteria[str(criterion.pk)] = {
            "score": estimate.score,
            "rationale": "",
            "evidence": [],
            "confidence": estimate.confidence,
        }
    return _proposal_finish(
        proposal=proposal,
        criteria=criteria,
        feedback={},
        dropped_quotes=0,
        notice="",
        model_name=f"learned-scorer:{stored.pk}:{stored.training_size}",
        prompt_version="",
        usage={"training_size": stored.training_size, "trained_at": stored.trained_at.isoformat()},
    )


def review_flag(*, submission: Submission, finding: manipulation.Finding) -> None:
    """Flag a review for one more finding (the language model's own report), in the
    caller's transaction: the flag is set before the proposal makes the review pending,
    so bulk approval and bulk release never see it unflagged."""
    review = Review.objects.select_for_update().get_or_create(submission=submission)[0]
    if any(flag.get("code") == finding.code for flag in review.flags):
        return
    review.flags = [*review.flags, finding.as_dict()]
    review.flagged = True
    review.save(update_fields=["flags", "flagged", "updated_at"])


def _proposal_finish(
    *, proposal: Proposal, flag: manipulation.Finding | None = None, **fields: Any
) -> Proposal:
    with transaction.atomic():
        # Only under this worker's claim: one that took over from it writes its own.
        updated = proposal_claimed(proposal_id=proposal.pk, claimed_at=proposal.started_at).update(
            status=Proposal.Status.DONE,
            finished_at=timezone.now(),
            error="",
            lease_until=None,
            **fields,
        )
        if not updated:  # someone else finished, failed or took it over meanwhile
            return Proposal.objects.get(pk=proposal.pk)
        if flag is not None:
            review_flag(submission=proposal.submission, finding=flag)
        review_refresh(submission=proposal.submission)
    _grading_observed(proposal, outcome="proposed")
    proposal.refresh_from_db()
    return proposal


# --- review ----------------------------------------------------------------------------


def _step_of(criteria) -> dict[str, float]:
    return {str(c.pk): float(c.step) for c in criteria}


def review_priority(
    *, review: Review, proposals: list[Proposal], criteria, open_regrade: bool
) -> float:
    """How urgently a teacher should look at this essay (higher first)."""
    priority = PRIORITY_FLAG if review.flagged else 0.0
    if open_regrade:
        priority += PRIORITY_REGRADE
    done = [p for p in proposals if p.status == Proposal.Status.DONE]
    if not done:
        return priority
    steps = _step_of(criteria)
    confidences = [
        float(entry.get("confidence", 0.0)) for p in done for entry in p.criteria.values()
    ]
    if confidences:
        priority += (1.0 - min(confidences)) * PRIORITY_UNCERTAINTY
    by_source = {p.source: p for p in done}
    if len(by_source) == 2:
        priority += min(proposal_disagreement(proposals=done, steps=steps), 5.0) * (
            PRIORITY_PER_STEP_OF_DISAGREEMENT
        )
    if any(p.notice for p in done):
        priority += PRIORITY_UNCERTAINTY / 2
    return priority


def proposal_disagreement(*, proposals: list[Proposal], steps: dict[str, float]) -> float:
    """The largest gap between the LLM's and the scorer's score on any criterion, in steps."""
    by_source = {p.source: p for p in proposals if p.status == Proposal.Status.DONE}
    llm, scorer = by_source.get(Proposal.Source.LLM), by_source.get(Proposal.Source.SCORER)
    if llm is None or scorer is None:
        return 0.0
    gaps = [
        abs(float(llm.criteria[key]["score"]) - float(scorer.criteria[key]["score"])) / step
        for key, step in steps.items()
        if key in llm.criteria and key in scorer.criteria
    ]
    return max(gaps, default=0.0)


def review_refresh(*, submission: Submission, decided: bool = False) -> Review:
    """Recompute a review's status and priority from its proposals and scores.

    ``decided``: a teacher's decision just happened, so a released or reopened review
    with every criterion scored becomes confirmed (to be released again).
    """
    with transaction.atomic():
        review = Review.objects.select_for_update().get_or_create(submission=submission)[0]
        criteria = list(submission.assignment.criteria.all())
        proposals = list(submission.proposals.all())
        open_regrade = submission.regrade_requests.filter(
            status=RegradeRequest.Status.OPEN
        ).exists()
        review.priority = review_priority(
            review=review, proposals=proposals, criteria=criteria, open_regrade=open_regrade
        )
        scored = set(submission.scores.values_list("criterion_id", flat=True))
        all_scored = bool(criteria) and all(c.pk in scored for c in criteria)
        reopened = review.status == Review.Status.PENDING and open_regrade
        if (review.status == Review.Status.RELEASED or reopened) and not decided:
            pass
        elif all_scored:
            review.status = Review.Status.CONFIRMED
        elif open_regrade or any(p.status == Proposal.Status.DONE for p in proposals):
            review.status = Review.Status.PENDING
        else:
            review.status = Review.Status.WAITING
        review.save(update_fields=["priority", "status", "updated_at"])
    return review


def primary_proposal(proposals) -> Proposal | None:
    """The proposal a teacher starts from: the language model's when done, else the
    learned scorer's."""
    done = {p.source: p for p in proposals if p.status == Proposal.Status.DONE}
    return done.get(Proposal.Source.LLM) or done.get(Proposal.Source.SCORER)


def _audit_details(proposal: Proposal | None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = dict(extra)
    if proposal is not None:
        details.update(
            proposal_id=proposal.pk,
            source=proposal.source,
            model=proposal.model_name,
            prompt_version=proposal.prompt_version,
            rubric_version=proposal.rubric_version,
        )
    return details


def score_text(value: Decimal | float | str) -> str:
    """A score as plain text without trailing zeros: 3, 1.5."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


def _score_state(score: CriterionScore | None) -> dict | None:
    return None if score is None else {"score": score_text(score.score)}


def criterion_score_set(
    *,
    submission: Submission,
    criterion: RubricCriterion,
    score: Decimal | str | float,
    actor,
    reason: str = "",
    comment: str | None = None,
) -> CriterionScore:
    """The teacher's decision on one criterion: approve the proposal's score, edit the
    comment, or override the score (a reason is required when the score differs from the
    proposal). Audited with before and after."""
    if criterion.assignment_id != submission.assignment_id:
        raise ValidationError(_("This criterion belongs to another assignment."))
    try:
        value = Decimal(str(score))
    except (InvalidOperation, ValueError):
        raise ValidationError(_("Enter a number.")) from None
    if not value.is_finite() or not criterion.allows(value):
        raise ValidationError(
            _("The score must be between %(min)s and %(max)s in steps of %(step)s.")
            % {
                "min": f"{criterion.min_score:g}",
                "max": f"{criterion.max_score:g}",
                "step": f"{criterion.step:g}",
            }
        )
    reason = reason.strip()
    if comment is not None and len(comment) > COMMENT_MAX_CHARS:
        raise ValidationError(_("The comment is too long."))
    proposal = primary_proposal(submission.proposals.all())
    proposed = proposal.for_criterion(criterion.pk).get("score") if proposal else None
    overrides = proposed is not None and Decimal(str(proposed)) != value
    existing = CriterionScore.objects.filter(submission=submission, criterion=criterion).first()
    changes_confirmed = existing is not None and existing.score != value
    if (overrides or changes_confirmed) and not reason:
        raise ValidationError(_("Give a reason when the score differs from the proposal."))
    with transaction.atomic():
        review = Review.objects.select_for_update().get_or_create(submission=submission)[0]
        before = _score_state(existing)
        if existing is None:
            existing = CriterionScore.objects.create(
                submission=submission, criterion=criterion, score=value, scored_by=actor
            )
        else:
            existing.score = value
            existing.scored_by = actor
            existing.scored_at = timezone.now()
            existing.save(update_fields=["score", "scored_by", "scored_at"])
        old_comment = review.comments.get(str(criterion.pk))
        if comment is not None:
            review.comments[str(criterion.pk)] = comment.strip()
            review.save(update_fields=["comments", "updated_at"])
        if overrides:
            action = "override"
        elif before is None:
            action = "approve" if proposal else "grade"
        else:
            action = "edit"
        audit_record(
            action=AuditEvent.Action.GRADE_CHANGED,
            actor=actor,
            target=existing,
            before=before,
            after={
                "score": score_text(value),
                **({"comment": review.comments.get(str(criterion.pk))} if comment else {}),
            },
            reason=reason,
            course_id=submission.assignment.course_id,
            details=_audit_details(
                proposal,
                decision=action,
                criterion=criterion.name,
                submission_id=submission.pk,
                proposed_score=proposed,
                comment_changed=comment is not None
                and old_comment != review.comments.get(str(criterion.pk)),
            ),
        )
        review = review_refresh(submission=submission, decided=True)
        if review.status == Review.Status.CONFIRMED:
            scorer_train_enqueue(assignment_id=submission.assignment_id)
    return existing


@dataclass(frozen=True)
class CriterionDecision:
    """What the one-form review posts for one criterion: ``score`` None leaves it
    undecided; ``comment`` None leaves the comment as it is."""

    criterion: RubricCriterion
    score: Decimal | None
    comment: str | None = None
    reason: str = ""


class ReviewChangedError(ValidationError):
    """Someone else changed the essay's grade after the page was loaded."""


def review_version(*, submission: Submission) -> str:
    """A fingerprint of the teacher's side of one essay (scores and comments): the review
    form carries it, and a save against an older one is refused instead of overwriting."""
    import hashlib
    import json

    scores = sorted(
        (criterion_id, score_text(score))
        for criterion_id, score in CriterionScore.objects.filter(submission=submission).values_list(
            "criterion_id", "score"
        )
    )
    comments = Review.objects.filter(submission=submission).values_list("comments", flat=True)
    payload = json.dumps([scores, next(iter(comments), {}) or {}], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def review_scores_save(
    *,
    submission: Submission,
    decisions: Sequence[CriterionDecision],
    actor,
    version: str | None = None,
) -> dict[int, ValidationError]:
    """Save every criterion of one essay at once: one audit entry per criterion that
    changes, nothing for those that do not, and nothing at all if any is refused.

    ``version`` (from :func:`review_version` when the page was loaded): if the essay's
    grade changed since, nothing is saved and :class:`ReviewChangedError` is raised.
    Returns the refusals by criterion id (empty when everything was saved).
    """
    errors: dict[int, ValidationError] = {}
    with transaction.atomic():
        Review.objects.select_for_update().get_or_create(submission=submission)
        if version is not None and version != review_version(submission=submission):
            raise ReviewChangedError(
                _(
                    "Someone else changed this essay's grade while you were looking at it. "
                    "The page now shows their changes; your entries are kept below."
                ),
                code="changed",
            )
        existing = {s.criterion_id: s for s in submission.scores.all()}
        comments = Review.objects.get(submission=submission).comments
        for decision in decisions:
            criterion = decision.criterion
            if decision.score is None:
                continue
            current = existing.get(criterion.pk)
            comment = decision.comment
            if comment is not None and comment.strip() == comments.get(str(criterion.pk), ""):
                comment = None
            if current is not None and current.score == decision.score and comment is None:
                continue  # unchanged: no audit entry
            try:
                with transaction.atomic():
                    criterion_score_set(
                        submission=submission,
                        criterion=criterion,
                        score=decision.score,
                        comment=comment,
                        reason=decision.reason,
                        actor=actor,
                    )
            except ValidationError as error:
                errors[criterion.pk] = error
        if errors:
            transaction.set_rollback(True)
    return errors


def bulk_approvable(*, review: Review, proposals, criteria, min_confidence: float) -> bool:
    """Whether the teacher's bulk approval may confirm this essay: never a flagged one, an
    open regrade, an excerpt-only grade, or one where the two sources disagree."""
    if review.flagged or review.status != Review.Status.PENDING:
        return False
    proposal = primary_proposal(proposals)
    if proposal is None or proposal.notice:
        return False
    if proposal_disagreement(proposals=list(proposals), steps=_step_of(criteria)) >= 1:
        return False
    for criterion in criteria:
        entry = proposal.for_criterion(criterion.pk)
        if not entry or float(entry.get("confidence", 0)) < min_confidence:
            return False
    return True


def reviews_bulk_approve(*, assignment: Assignment, min_confidence: float, actor) -> int:
    """Approve the proposal of every unflagged essay whose every criterion is at least
    ``min_confidence`` confident. Returns how many essays were confirmed."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValidationError(_("Pick a confidence between 0 and 1."))
    criteria = list(assignment.criteria.all())
    reviews = (
        Review.objects.in_queue()
        .filter(submission__assignment=assignment, flagged=False)
        .select_related("submission")
        .prefetch_related("submission__proposals", "submission__scores")
    )
    approved = 0
    for review in reviews:
        submission = review.submission
        proposals = list(submission.proposals.all())
        if submission.regrade_requests.filter(status=RegradeRequest.Status.OPEN).exists():
            continue
        if not bulk_approvable(
            review=review, proposals=proposals, criteria=criteria, min_confidence=min_confidence
        ):
            continue
        proposal = primary_proposal(proposals)
        assert proposal is not None
        with transaction.atomic():
            locked = Review.objects.select_for_update().get(pk=review.pk)
            if locked.flagged or locked.status != Review.Status.PENDING:
                continue
            existing = {s.criterion_id: s for s in submission.scores.all()}
            before, after = {}, {}
            for criterion in criteria:
                if criterion.pk in existing:
                    continue
                value = Decimal(str(proposal.for_criterion(criterion.pk)["score"]))
                CriterionScore.objects.create(
                    submission=submission, criterion=criterion, score=value, scored_by=actor
                )
                before[criterion.name] = None
                after[criterion.name] = score_text(value)
            audit_record(
                action=AuditEvent.Action.GRADE_CHANGED,
                actor=actor,
                target=submission,
                before=before,
                after=after,
                reason=_("Bulk approval at confidence ≥ %(c).2f") % {"c": min_confidence},
                course_id=assignment.course_id,
                details=_audit_details(
                    proposal,
                    decision="bulk_approve",
                    min_confidence=min_confidence,
                    submission_id=submission.pk,
                ),
            )
            review_refresh(submission=submission, decided=True)
            approved += 1
    if approved:
        scorer_train_enqueue(assignment_id=assignment.pk)
    return approved


def _release_snapshot(*, review: Review) -> dict[str, Any]:
    submission = review.submission
    criteria = list(submission.assignment.criteria.all())
    scores = {s.criterion_id: s.score for s in submission.scores.all()}
    proposal = primary_proposal(submission.proposals.all())
    rows = []
    for criterion in criteria:
        entry = proposal.for_criterion(criterion.pk) if proposal else {}
        comment = review.comments.get(str(criterion.pk)) or entry.get("rationale", "")
        rows.append(
            {
                "criterion_id": criterion.pk,
                "name": criterion.name,
                "score": score_text(scores[criterion.pk]),
                "max": score_text(criterion.max_score),
                "min": score_text(criterion.min_score),
                "comment": comment,
                "evidence": list(entry.get("evidence", [])),
            }
        )
    feedback = review_feedback(review=review, proposal=proposal)
    return {
        "criteria": rows,
        "total": score_text(sum(scores.values(), Decimal(0))),
        "max_total": score_text(sum((c.max_score for c in criteria), Decimal(0))),
        "strengths": list(feedback.get("strengths", [])),
        "next_steps": list(feedback.get("next_steps", [])),
    }


# The teacher's version of the overall feedback lives in ``Review.comments`` next to the
# per-criterion comments (whose keys are criterion ids, so these cannot collide).
_FEEDBACK_KEYS = ("_strengths", "_next_steps")
FEEDBACK_ITEMS_MAX = 5


def review_feedback(*, review: Review, proposal: Proposal | None) -> dict[str, list[str]]:
    """The overall feedback the learner will see: the teacher's edit, else the AI's."""
    if any(key in review.comments for key in _FEEDBACK_KEYS):
        return {
            "strengths": list(review.comments.get("_strengths", [])),
            "next_steps": list(review.comments.get("_next_steps", [])),
        }
    feedback = proposal.feedback if proposal else {}
    return {
        "strengths": list(feedback.get("strengths", [])),
        "next_steps": list(feedback.get("next_steps", [])),
    }


def review_feedback_set(
    *, review: Review, strengths: list[str], next_steps: list[str], actor
) -> Review:
    """The teacher edits the overall feedback (strengths, next steps) before release."""
    strengths = [item.strip() for item in strengths if item.strip()]
    next_steps = [item.strip() for item in next_steps if item.strip()]
    if len(strengths) > FEEDBACK_ITEMS_MAX or len(next_steps) > FEEDBACK_ITEMS_MAX:
        raise ValidationError(
            _("Give at most %(n)d strengths and %(n)d next steps.") % {"n": FEEDBACK_ITEMS_MAX}
        )
    if any(len(item) > COMMENT_MAX_CHARS for item in [*strengths, *next_steps]):
        raise ValidationError(_("The comment is too long."))
    with transaction.atomic():
        review = Review.objects.select_for_update().select_related("submission").get(pk=review.pk)
        proposal = primary_proposal(review.submission.proposals.all())
        before = review_feedback(review=review, proposal=proposal)
        review.comments["_strengths"] = strengths
        review.comments["_next_steps"] = next_steps
        review.save(update_fields=["comments", "updated_at"])
        after = review_feedback(review=review, proposal=proposal)
        audit_record(
            action=AuditEvent.Action.GRADE_CHANGED,
            actor=actor,
            target=review.submission,
            before={"feedback": before},
            after={"feedback": after},
            reason=_("Feedback edited"),
            course_id=review.submission.assignment.course_id,
            details=_audit_details(
                proposal, decision="feedback", submission_id=review.submission_id
            ),
        )
    return review


def review_release(*, review: Review, actor, acknowledge_flag: bool = False) -> Review:
    """Show the confirmed grade to the learner. A flagged essay needs the teacher's explicit
    acknowledgement: it is never released in bulk or by default."""
    with transaction.atomic():
        review = (
            Review.objects.select_for_update()
            .select_related("submission__assignment")
            .get(pk=review.pk)
        )
        if review.status != Review.Status.CONFIRMED:
            raise ValidationError(_("Confirm every criterion before releasing."))
        if review.flagged and not acknowledge_flag:
            raise ValidationError(
                _("This essay is flagged: confirm that you have read it before releasing.")
            )
        before = review.released
        review.released = _release_snapshot(review=review)
        review.released_at = timezone.now()
        review.released_by = actor
        review.status = Review.Status.RELEASED
        review.save()
        resolved = RegradeRequest.objects.filter(
            submission=review.submission, status=RegradeRequest.Status.OPEN
        ).update(status=RegradeRequest.Status.RESOLVED, resolved_at=timezone.now())
        if not before:
            _mastery_evidence_from_release(review=review)
        audit_record(
            action=AuditEvent.Action.GRADE_CHANGED,
            actor=actor,
            target=review.submission,
            before={"released": before},
            after={"released": review.released},
            reason=_("Released to the learner"),
            course_id=review.submission.assignment.course_id,
            details={
                "decision": "release",
                "submission_id": review.submission_id,
                "flag_acknowledged": bool(review.flagged),
                "regrades_resolved": resolved,
            },
        )
        release_notice_send(review=review, regrade_answered=bool(resolved))
        # Inside the transaction: what listeners record (a grade to send to an LMS)
        # commits with the release or not at all.
        grade_released.send(sender=Review, review=review)
    return review


def _mastery_evidence_from_release(*, review: Review) -> None:
    """Each released criterion tagged with a concept counts as one answer on it for the
    learner model: correct when the score reaches the middle of the criterion's range.
    Only the first release counts, so a regrade does not count the same essay twice."""
    submission = review.submission
    scores = {s.criterion_id: s.score for s in submission.scores.all()}
    for criterion in submission.assignment.criteria.select_related("concept"):
        if criterion.concept is None or criterion.pk not in scores:
            continue
        middle = (criterion.min_score + criterion.max_score) / 2
        mastery_evidence_record(
            learner=submission.learner,
            concept=criterion.concept,
            correct=scores[criterion.pk] >= middle,
            source=MasteryEvidence.Source.GRADING,
        )


def reviews_release_all(*, assignment: Assignment, actor) -> int:
    """Release every confirmed essay that is not flagged (flagged ones one at a time)."""
    count = 0
    reviews = Review.objects.filter(
        submission__assignment=assignment,
        submission__is_current=True,
        status=Review.Status.CONFIRMED,
        flagged=False,
    )
    for review in reviews:
        review_release(review=review, actor=actor)
        count += 1
    return count


def regrade_request(*, submission: Submission, learner, comment: str) -> RegradeRequest:
    """The learner asks for a regrade of a released grade; the essay goes back to the queue."""
    comment = comment.strip()
    if submission.learner_id != learner.pk:
        raise ValidationError(_("You can only ask for a regrade of your own essay."))
    if not comment:
        raise ValidationError(_("Say what you would like the teacher to look at again."))
    if len(comment) > COMMENT_MAX_CHARS:
        raise ValidationError(_("The comment is too long."))
    review = Review.objects.get(submission=submission)
    if submission.regrade_requests.filter(status=RegradeRequest.Status.OPEN).exists():
        raise ValidationError(_("You have already asked for a regrade of this essay."))
    if review.status != Review.Status.RELEASED:
        raise ValidationError(_("A regrade can be asked for once the grade is released."))
    try:
        with transaction.atomic():
            request = RegradeRequest.objects.create(submission=submission, comment=comment)
            Review.objects.filter(pk=review.pk).update(status=Review.Status.PENDING)
    except IntegrityError:
        raise ValidationError(_("You have already asked for a regrade of this essay.")) from None
    review_refresh(submission=submission)
    return request


# --- the learned scorer ----------------------------------------------------------------


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
