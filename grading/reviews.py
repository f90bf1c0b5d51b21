"""The teacher's review of an essay: its priority in the queue, decisions per criterion
(approve, edit, override; every change audited), bulk approval, overall feedback, release
to the learner, and the learner's regrade request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grading import manipulation
from grading.models import (
    Assignment,
    CriterionScore,
    Proposal,
    RegradeRequest,
    Review,
    RubricCriterion,
    Submission,
)
from grading.notices import release_notice_send
from grading.signals import grade_released
from grading.training import scorer_train_enqueue
from learners.audit import audit_record
from learners.models import AuditEvent, User
from learning.evidence import mastery_evidence_record
from learning.models import MasteryEvidence

COMMENT_MAX_CHARS = 4000
# Review priority weights: a flag outranks everything, then an open regrade request, then
# disagreement between the two sources (in rubric steps), then low confidence.
PRIORITY_FLAG = 100.0
PRIORITY_REGRADE = 50.0
PRIORITY_PER_STEP_OF_DISAGREEMENT = 5.0
PRIORITY_UNCERTAINTY = 10.0


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
    actor: User,
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
    actor: User,
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


def reviews_bulk_approve(*, assignment: Assignment, min_confidence: float, actor: User) -> int:
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
            before: dict[str, str | None] = {}
            after: dict[str, str | None] = {}
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
    *, review: Review, strengths: list[str], next_steps: list[str], actor: User
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


def review_release(*, review: Review, actor: User, acknowledge_flag: bool = False) -> Review:
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


def reviews_release_all(*, assignment: Assignment, actor: User) -> int:
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


def regrade_request(*, submission: Submission, learner: User, comment: str) -> RegradeRequest:
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
