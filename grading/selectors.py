"""Read use cases of essay grading: who may see what, the review queue, the dashboard."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from grading.models import (
    Assignment,
    CriterionScore,
    Proposal,
    RegradeRequest,
    Review,
    StoredScorer,
    Submission,
    rubric_version_of,
)
from learners.models import AuditEvent, Course, User
from learners.selectors import course_for_member, course_for_teacher

if TYPE_CHECKING:
    from learners.models import Course, User


def assignment_for_member(*, user: User, course_id: int, assignment_id: int) -> Assignment:
    """The assignment if the user belongs to its course (404 otherwise)."""
    course = course_for_member(user=user, course_id=course_id)
    return _assignment_in(course, assignment_id)


def assignment_for_teacher(*, user: User, course_id: int, assignment_id: int) -> Assignment:
    """The assignment if the user teaches its course (404 otherwise, even to students)."""
    course = course_for_teacher(user=user, course_id=course_id)
    return _assignment_in(course, assignment_id)


def _assignment_in(course: Course, assignment_id: int) -> Assignment:
    """The course's assignment with its criteria (404 otherwise). Its ``course`` is the one
    read with the user's role (``course_for_member``), so role checks ask nothing more."""
    assignment = get_object_or_404(
        Assignment.objects.prefetch_related("criteria"), pk=assignment_id, course=course
    )
    assignment.course = course
    return assignment


def assignments_of_course(*, course: Course) -> QuerySet[Assignment]:
    return Assignment.objects.filter(course=course).order_by("due_at", "title", "pk")


def submission_current(*, assignment: Assignment, learner: User) -> Submission | None:
    return (
        Submission.objects.filter(assignment=assignment, learner=learner, is_current=True)
        .select_related("review")
        .prefetch_related("regrade_requests")
        .first()
    )


@dataclass(frozen=True)
class Version:
    """One submitted version of a learner's essay and its grade, if one was released.

    A resubmission makes a new current version; the earlier ones keep their reviews,
    released grades and feedback, which stay visible in the history (student page, API,
    teacher's queue)."""

    number: int  # 1 for the first version
    submission: Submission
    status: str  # the review's status ("" when it has none)
    released: dict | None  # the snapshot the learner was shown (Review.released)
    released_at: Any = None

    @property
    def is_current(self) -> bool:
        return self.submission.is_current


def _versions(submissions) -> list[Version]:
    """Versions, newest first, numbered in submission order."""
    ordered = sorted(submissions, key=lambda s: (s.submitted_at, s.pk))
    versions = []
    for number, submission in enumerate(ordered, start=1):
        review = getattr(submission, "review", None)
        versions.append(
            Version(
                number=number,
                submission=submission,
                status=review.status if review else "",
                released=review.released if review else None,
                released_at=review.released_at if review else None,
            )
        )
    return versions[::-1]


def submission_versions(*, assignment: Assignment, learner: User) -> list[Version]:
    """Every version a learner submitted to an assignment, newest first, with its grade."""
    return _versions(
        Submission.objects.filter(assignment=assignment, learner=learner).select_related("review")
    )


def versions_by_learner(*, assignment: Assignment, learner_ids) -> dict[int, list[Version]]:
    """:func:`submission_versions` of several learners at once, by learner id."""
    by_learner: dict[int, list] = defaultdict(list)
    submissions = Submission.objects.filter(
        assignment=assignment, learner_id__in=set(learner_ids)
    ).select_related("review")
    for submission in submissions:
        by_learner[submission.learner_id].append(submission)
    return {learner_id: _versions(subs) for learner_id, subs in by_learner.items()}


def _with_versions(assignment: Assignment, reviews: list[Review]) -> list[Review]:
    """Each review with ``version`` (its number) and ``earlier_versions`` (the learner's
    other versions, newest first): a resubmitted essay shows the grade already released."""
    versions = versions_by_learner(
        assignment=assignment, learner_ids=[r.submission.learner_id for r in reviews]
    )
    for review in reviews:
        mine = versions.get(review.submission.learner_id, [])
        review.version = next(
            (v.number for v in mine if v.submission.pk == review.submission_id), 1
        )
        review.earlier_versions = [v for v in mine if v.submission.pk != review.submission_id]
    return reviews


def _with_review_data(queryset: QuerySet[Review]) -> QuerySet[Review]:
    return queryset.select_related("submission__learner").prefetch_related(
        Prefetch("submission__proposals", queryset=Proposal.objects.order_by("source")),
        Prefetch("submission__scores", queryset=CriterionScore.objects.order_by("criterion_id")),
        Prefetch(
            "submission__regrade_requests",
            queryset=RegradeRequest.objects.filter(status=RegradeRequest.Status.OPEN),
            to_attr="open_regrades",
        ),
    )


def review_queue(*, assignment: Assignment) -> list[Review]:
    """Essays to review, most uncertain first (flagged, regrade, disagreement, low
    confidence), each with its proposals, scores and open regrade requests loaded."""
    reviews = list(
        _with_review_data(Review.objects.in_queue().filter(submission__assignment=assignment))
    )
    return _with_versions(assignment, reviews)


def reviews_done(*, assignment: Assignment) -> list[Review]:
    """Confirmed and released essays, newest change first."""
    reviews = list(
        _with_review_data(
            Review.objects.filter(
                submission__assignment=assignment,
                submission__is_current=True,
                status__in=[Review.Status.CONFIRMED, Review.Status.RELEASED],
            ).order_by("status", "-updated_at", "pk")
        )
    )
    return _with_versions(assignment, reviews)


@dataclass(frozen=True)
class ReviewOrder:
    """Submission ids in the order a teacher walks them: the queue, then confirmed ones."""

    queue: list[int]
    done: list[int]


def review_order(*, assignment: Assignment) -> ReviewOrder:
    """The essays' order for next/previous on the review page, in two small queries."""
    queue = Review.objects.in_queue().filter(submission__assignment=assignment)
    done = Review.objects.filter(
        submission__assignment=assignment,
        submission__is_current=True,
        status__in=[Review.Status.CONFIRMED, Review.Status.RELEASED],
    ).order_by("status", "-updated_at", "pk")
    return ReviewOrder(
        queue=list(queue.values_list("submission_id", flat=True)),
        done=list(done.values_list("submission_id", flat=True)),
    )


def review_for_teacher(*, assignment: Assignment, submission_id: int) -> Review:
    return get_object_or_404(
        _with_review_data(Review.objects.all()),
        submission__pk=submission_id,
        submission__assignment=assignment,
    )


def grade_history(*, submission: Submission) -> QuerySet[AuditEvent]:
    """Every audited grade change of one submission, oldest first."""
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.GRADE_CHANGED,
        course_id=submission.assignment.course_id,
        details__submission_id=submission.pk,
    ).order_by("created_at", "id")


# --- the learned scorer -----------------------------------------------------------------


@dataclass(frozen=True)
class ScorerStatus:
    """What the review page says about the assignment's learned scorer."""

    confirmed: int  # essays the teacher has scored on every criterion: its training data
    needed: int  # how many it needs before it is first trained
    trained_on: int | None  # essays the current scorer was fitted on (None: not trained)
    trained_at: Any = None


def scorer_status(*, assignment: Assignment, criteria: list) -> ScorerStatus:
    """The learned scorer of ``assignment`` (whose ``criteria`` the caller has loaded)."""
    from grading.scoring import MIN_TRAINING_ESSAYS

    stored = (
        StoredScorer.objects.filter(
            assignment=assignment, rubric_version=rubric_version_of(criteria)
        )
        .only("training_size", "trained_at")
        .first()
    )
    return ScorerStatus(
        confirmed=assignment.confirmed_count(criteria),
        needed=MIN_TRAINING_ESSAYS,
        trained_on=stored.training_size if stored else None,
        trained_at=stored.trained_at if stored else None,
    )


# --- agreement and fairness ------------------------------------------------------------


@dataclass
class CriterionAgreement:
    name: str
    source: str
    n: int
    qwk: float | None = None
    exact: float | None = None
    adjacent: float | None = None
    smd: float | None = None


@dataclass
class AgreementReport:
    rows: list[CriterionAgreement] = field(default_factory=list)
    overall: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    has_group_data: bool = False
    final_count: int = 0


def agreement_report(
    *, assignment: Assignment, learner_groups: dict[int, dict[str, str]] | None = None
) -> AgreementReport:
    """Agreement between AI proposals and the teacher's final grades, per source and
    criterion (QWK, exact, adjacent, SMD from grading.evaluation), the SMD of the total
    score, and SMD per learner group where group data is given (``{user id: {group:
    value}}``). Only current submissions with a final score count."""
    # The statistics (scikit-learn, SciPy) load with the first report, not with every
    # process that shows a grading page.
    from grading.evaluation import (
        criterion_agreement,
        group_fairness,
        standardized_mean_difference,
    )

    criteria = list(assignment.criteria.all())
    submissions = list(
        Submission.objects.filter(assignment=assignment, is_current=True)
        .prefetch_related(
            "scores", Prefetch("proposals", queryset=Proposal.objects.filter(status="done"))
        )
        .order_by("pk")
    )
    report = AgreementReport()
    report.final_count = sum(1 for s in submissions if s.scores.all())
    for source, label in Proposal.Source.choices:
        totals_human: list[float] = []
        totals_machine: list[float] = []
        total_learners: list[int] = []
        per_criterion: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for submission in submissions:
            proposal = next((p for p in submission.proposals.all() if p.source == source), None)
            if proposal is None:
                continue
            final = {s.criterion_id: float(s.score) for s in submission.scores.all()}
            complete = True
            human_total = machine_total = 0.0
            for criterion in criteria:
                entry = proposal.for_criterion(criterion.pk)
                if criterion.pk not in final or "score" not in entry:
                    complete = False
                    continue
                per_criterion[criterion.pk][0].append(final[criterion.pk])
                per_criterion[criterion.pk][1].append(float(entry["score"]))
                human_total += final[criterion.pk]
                machine_total += float(entry["score"])
            if complete and criteria:
                totals_human.append(human_total)
                totals_machine.append(machine_total)
                total_learners.append(submission.learner_id)
        for criterion in criteria:
            human, machine = per_criterion.get(criterion.pk, ([], []))
            row = CriterionAgreement(name=criterion.name, source=str(label), n=len(human))
            if human:
                metrics = criterion_agreement(criterion.as_scoring_criterion(), human, machine)
                row.qwk, row.exact, row.adjacent, row.smd = (
                    metrics["qwk"],
                    metrics["exact"],
                    metrics["adjacent"],
                    metrics["smd"],
                )
            report.rows.append(row)
        if totals_human:
            report.overall.append(
                {
                    "source": str(label),
                    "n": len(totals_human),
                    "smd": standardized_mean_difference(totals_human, totals_machine),
                }
            )
            if learner_groups:
                columns = sorted({k for groups in learner_groups.values() for k in groups})
                groups = {
                    column: [learner_groups.get(uid, {}).get(column, "") for uid in total_learners]
                    for column in columns
                }
                for fairness in group_fairness(groups, totals_human, totals_machine):
                    report.groups.append({"source": str(label), **fairness})
    report.has_group_data = bool(learner_groups)
    return report
