"""Pages of essay grading: assignments, submitting, the teacher's review, the dashboard.

Students see their own submission and, once released, their own grade; teachers see the
essays of the courses they teach; everyone else gets 404. Forms work without JavaScript
(post, then redirect); with htmx the same views answer with a named partial of the page's
template. An invalid form answers 422 with the form and its errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST

from ai.budget import GRADED_WITHOUT_AI, ai_budget_reached
from grading import forms, proposals, reviews, rubrics, selectors, submissions
from grading.history import history_lines
from grading.models import Assignment, Proposal, RegradeRequest, Review
from learners.http import UserRequest
from learners.selectors import course_for_member, course_for_teacher, user_can_teach

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from learners.models import Course, User


UNPROCESSABLE = 422
# A criterion with more scores than this gets a number box instead of a list of levels.
MAX_LISTED_LEVELS = 20
# How the review page names the two proposal sources (no model ids on screen).
_SOURCE_LABELS: dict[str, StrOrPromise] = {
    Proposal.Source.LLM: _lazy("AI"),
    Proposal.Source.SCORER: _lazy("Learned scorer"),
}


def _spans(text: str, passages: list[str]) -> list[list[int]]:
    """Where the passages occur in the text, overlapping occurrences merged."""
    spans: list[tuple[int, int]] = []
    for passage in passages:
        if not passage:
            continue
        start = text.find(passage)
        while start != -1:
            spans.append((start, start + len(passage)))
            start = text.find(passage, start + len(passage))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def essay_highlight(text: str, quotes: list[str], hidden: Sequence[str] = ()) -> SafeString:
    """The essay as HTML: every character escaped, verified quotes inside ``<mark>``, and
    passages the uploaded file hid from view inside ``<mark class="essay-hidden">`` with
    a label saying so (a hidden passage wins over a quote that overlaps it)."""
    hidden_spans = _spans(text, list(hidden))
    quote_spans = [
        span
        for span in _spans(text, quotes)
        if not any(span[0] < end and start < span[1] for start, end in hidden_spans)
    ]
    label = escape(_("hidden in the file"))
    tagged = [(s, e, "hidden") for s, e in hidden_spans] + [(s, e, "quote") for s, e in quote_spans]
    parts: list[str] = []
    position = 0
    for start, end, kind in sorted(tagged):
        parts.append(escape(text[position:start]))
        if kind == "hidden":
            parts.append(
                f'<mark class="essay-hidden"><span class="essay-hidden-label">[{label}]</span> '
                f"{escape(text[start:end])}</mark>"
            )
        else:
            parts.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    parts.append(escape(text[position:]))
    return mark_safe("".join(parts))  # noqa: S308 - every piece of the text is escaped above


# --- assignments -----------------------------------------------------------------------


@require_GET
@login_required
def assignment_list(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    return render(
        request,
        "grading/assignments.html",
        {
            "course": course,
            "assignments": selectors.assignments_of_course(course=course),
            "is_teacher": user_can_teach(user=request.user, course=course),
        },
    )


def _assignment_form_page(request, course: Course, form, criteria_forms, *, error="", status=200):
    return render(
        request,
        "grading/assignment_form.html",
        {"course": course, "form": form, "criteria_forms": criteria_forms, "error": error},
        status=status,
    )


@login_required
def assignment_new(request: UserRequest, course_id: int) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    course = course_for_teacher(user=request.user, course_id=course_id)
    if request.method == "GET":
        return _assignment_form_page(
            request, course, forms.AssignmentForm(), forms.CriterionFormSet(prefix="criteria")
        )
    form = forms.AssignmentForm(request.POST, request.FILES)
    criteria_forms = forms.CriterionFormSet(request.POST, prefix="criteria")
    if not (form.is_valid() and criteria_forms.is_valid()):
        return _assignment_form_page(request, course, form, criteria_forms, status=UNPROCESSABLE)
    rubric = form.cleaned_data["rubric_file"] or form.cleaned_data["rubric_json"]
    if rubric is None:
        entries = [f.as_rubric_entry() for f in criteria_forms]
        rubric = {"criteria": [e for e in entries if e is not None]}
    try:
        assignment = rubrics.assignment_create(
            course=course,
            title=form.cleaned_data["title"],
            prompt=form.cleaned_data["prompt"],
            due_at=form.cleaned_data["due_at"],
            resubmission_policy=form.cleaned_data["resubmission_policy"],
            rubric=rubric,
        )
    except ValidationError as error:
        return _assignment_form_page(
            request,
            course,
            form,
            criteria_forms,
            error=" ".join(error.messages),
            status=UNPROCESSABLE,
        )
    flash.success(request, _("Assignment created."))
    return redirect("grading:assignment", course.pk, assignment.pk)


@require_GET
@login_required
def rubric_export_view(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    body = json.dumps(rubrics.rubric_export(assignment=assignment), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rubric-{assignment.pk}.json"'
    return response


def _student_context(assignment: Assignment, learner: User) -> dict:
    submission = selectors.submission_current(assignment=assignment, learner=learner)
    review = getattr(submission, "review", None) if submission else None
    open_regrade = None
    if submission is not None:
        open_regrade = next(
            (
                r
                for r in submission.regrade_requests.all()
                if r.status == RegradeRequest.Status.OPEN
            ),
            None,
        )
    grade = None
    if review is not None and review.released:
        grade = review.released
    can_submit = True
    refusal = ""
    try:
        submissions.submission_check_allowed(assignment=assignment, learner=learner)
    except ValidationError as error:
        can_submit, refusal = False, " ".join(error.messages)
    versions = selectors.submission_versions(assignment=assignment, learner=learner)
    return {
        "submission": submission,
        "review": review,
        "grade": grade,
        "open_regrade": open_regrade,
        "versions": versions,
        # The newest grade released on an earlier version, while the current one waits.
        "earlier_grade": None
        if grade
        else next((v for v in versions if v.released and not v.is_current), None),
        "can_submit": can_submit,
        "refusal": refusal,
    }


def _assignment_page(request, assignment, *, submit_form=None, regrade_form=None, status=200):
    is_teacher = user_can_teach(user=request.user, course=assignment.course)
    context = {
        "course": assignment.course,
        "assignment": assignment,
        "criteria": assignment.criteria.all(),
        "is_teacher": is_teacher,
        "submit_form": submit_form or forms.SubmissionForm(),
        # What one form may carry (DATA_UPLOAD_MAX_MEMORY_SIZE), checked in the browser
        # before sending, less room for the other fields.
        "essay_max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 4096,
        "essay_max_mb": settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024),
        "regrade_form": regrade_form or forms.RegradeForm(),
    }
    if not is_teacher:
        context.update(_student_context(assignment, request.user))
    return render(request, "grading/assignment.html", context, status=status)


@require_GET
@login_required
def assignment_detail(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_member(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    return _assignment_page(request, assignment)


@require_POST
@login_required
def submission_create(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_member(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    if user_can_teach(user=request.user, course=assignment.course):
        raise Http404("Teachers do not submit essays.")
    form = forms.SubmissionForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            upload = form.cleaned_data["upload"]
            text, hidden = form.cleaned_data["text"], []
            if upload is not None:
                essay = submissions.submission_upload_read(name=upload.name, data=upload.read())
                text, hidden = essay.text, essay.hidden
            submissions.submission_submit(
                assignment=assignment, learner=request.user, text=text, hidden=hidden
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # The tag tells static/js/drafts.js that this draft has arrived.
            flash.success(request, _("Your essay was submitted."), extra_tags="essay-submitted")
            if ai_budget_reached(user=request.user, course=assignment.course):
                flash.info(request, GRADED_WITHOUT_AI)
            return redirect("grading:assignment", course_id, assignment_id)
    return _assignment_page(request, assignment, submit_form=form, status=UNPROCESSABLE)


@require_POST
@login_required
def regrade_create(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_member(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    submission = selectors.submission_current(assignment=assignment, learner=request.user)
    if submission is None:
        raise Http404("No submission.")
    form = forms.RegradeForm(request.POST)
    if form.is_valid():
        try:
            reviews.regrade_request(
                submission=submission, learner=request.user, comment=form.cleaned_data["comment"]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            flash.success(request, _("Your teacher will look at your essay again."))
            return redirect("grading:assignment", course_id, assignment_id)
    return _assignment_page(request, assignment, regrade_form=form, status=UNPROCESSABLE)


# --- review ----------------------------------------------------------------------------


def _queue_row(review: Review, criteria) -> dict:
    proposals = list(review.submission.proposals.all())
    done = [p for p in proposals if p.status == Proposal.Status.DONE]
    confidences = [float(entry.get("confidence", 0)) for p in done for entry in p.criteria.values()]
    steps = {str(c.pk): float(c.step) for c in criteria}
    return {
        "review": review,
        "submission": review.submission,
        "sources": [p.get_source_display() for p in done],
        "failed": [p for p in proposals if p.status == Proposal.Status.FAILED],
        "running": any(
            p.status in (Proposal.Status.QUEUED, Proposal.Status.RUNNING) for p in proposals
        ),
        "confidence": min(confidences) if confidences else None,
        "disagreement": reviews.proposal_disagreement(proposals=done, steps=steps),
        "regrade": bool(review.submission.open_regrades),
        "scored": len(review.submission.scores.all()),
    }


def _review_context(assignment: Assignment) -> dict:
    criteria = list(assignment.criteria.all())
    queue = [_queue_row(r, criteria) for r in selectors.review_queue(assignment=assignment)]
    return {
        "course": assignment.course,
        "assignment": assignment,
        "criteria": criteria,
        "queue": queue,
        # While the AI is still grading, the queue refreshes itself.
        "grading_running": any(item["running"] for item in queue),
        "done": [_queue_row(r, criteria) for r in selectors.reviews_done(assignment=assignment)],
        "scorer": selectors.scorer_status(assignment=assignment, criteria=criteria),
        "bulk_form": forms.BulkApproveForm(),
    }


@require_GET
@login_required
def review_queue_view(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    template = "grading/review.html#queue" if request.htmx else "grading/review.html"
    return render(request, template, _review_context(assignment))


@require_POST
@login_required
def bulk_approve_view(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    form = forms.BulkApproveForm(request.POST)
    if not form.is_valid():
        context = _review_context(assignment) | {"bulk_form": form}
        return render(request, "grading/review.html", context, status=UNPROCESSABLE)
    count = reviews.reviews_bulk_approve(
        assignment=assignment,
        min_confidence=float(form.cleaned_data["min_confidence"]),
        actor=request.user,
    )
    flash.success(request, _("%(n)d essays approved.") % {"n": count})
    return redirect("grading:review", course_id, assignment_id)


@require_POST
@login_required
def release_all_view(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    count = reviews.reviews_release_all(assignment=assignment, actor=request.user)
    flash.success(request, _("%(n)d grades released.") % {"n": count})
    return redirect("grading:review", course_id, assignment_id)


def _review_for_teacher(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> tuple[Assignment, Review]:
    """The assignment and one essay's review, for a teacher of the course (else 404)."""
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    return assignment, selectors.review_for_teacher(
        assignment=assignment, submission_id=submission_id
    )


def _level_options(criterion, proposed: dict[str, str]) -> list[dict] | None:
    """Every score on the criterion's scale with its level descriptor and which sources
    proposed it; None when the scale has too many steps to list (a number box then)."""
    steps = (criterion.max_score - criterion.min_score) / criterion.step
    if steps > MAX_LISTED_LEVELS:
        return None
    descriptors = {}
    for key, text in (criterion.level_descriptors or {}).items():
        try:
            descriptors[reviews.score_text(key)] = text
        except (ArithmeticError, ValueError):
            continue
    options = []
    for index in range(int(steps) + 1):
        value = reviews.score_text(criterion.min_score + index * criterion.step)
        options.append(
            {
                "value": value,
                "descriptor": descriptors.get(value, ""),
                "proposed_by": [label for label, score in proposed.items() if score == value],
            }
        )
    return options


def _criterion_rows(review: Review, criteria, forms_by_id=None) -> list[dict]:
    submission = review.submission
    proposals = list(submission.proposals.all())
    primary = reviews.primary_proposal(proposals)
    done = [p for p in proposals if p.status == Proposal.Status.DONE]
    # The language model's proposal first, then the learned scorer's: side by side.
    done.sort(key=lambda p: p.source != Proposal.Source.LLM)
    scores = {s.criterion_id: s for s in submission.scores.all()}
    rows = []
    for number, criterion in enumerate(criteria, start=1):
        entry = primary.for_criterion(criterion.pk) if primary else {}
        final = scores.get(criterion.pk)
        comment = review.comments.get(str(criterion.pk), entry.get("rationale", ""))
        initial = {
            "score": reviews.score_text(final.score)
            if final
            else (reviews.score_text(entry["score"]) if entry.get("score") is not None else None),
            "comment": comment,
        }
        sides = []
        for proposal in done:
            proposed = proposal.for_criterion(criterion.pk)
            if proposed:
                sides.append(
                    {
                        "label": _SOURCE_LABELS.get(proposal.source, proposal.get_source_display()),
                        "score": proposed.get("score"),
                        "confidence": proposed.get("confidence"),
                        "rationale": proposed.get("rationale", ""),
                        "evidence": proposed.get("evidence", []),
                    }
                )
        proposed_scores = {
            side["label"]: reviews.score_text(side["score"])
            for side in sides
            if side["score"] is not None
        }
        form = (forms_by_id or {}).get(criterion.pk) or forms.EssayCriterionForm(
            initial=initial, prefix=f"c{criterion.pk}"
        )
        rows.append(
            {
                "number": number,
                "criterion": criterion,
                "entry": entry,
                "sides": sides,
                "levels": _level_options(criterion, proposed_scores),
                "final": final,
                "form": form,
                "initial_comment": comment,
                "chosen": reviews.score_text(form["score"].value())
                if _is_number(form["score"].value())
                else "",
            }
        )
    return rows


def _is_number(value) -> bool:
    try:
        reviews.score_text(value)
    except (ArithmeticError, ValueError, TypeError):
        return False
    return value not in (None, "")


def _essay_neighbours(assignment: Assignment, submission_id: int) -> dict:
    """The previous and next essay in review order (the queue, then the confirmed ones),
    and the next one still to review."""
    order = selectors.review_order(assignment=assignment)
    sequence = order.queue + order.done
    position = sequence.index(submission_id) if submission_id in sequence else None
    previous_id = next_id = None
    if position is not None:
        previous_id = sequence[position - 1] if position > 0 else None
        next_id = sequence[position + 1] if position + 1 < len(sequence) else None
    waiting = [pk for pk in order.queue if pk != submission_id]
    if submission_id in order.queue:
        after = order.queue[order.queue.index(submission_id) + 1 :]
        next_to_review = after[0] if after else (waiting[0] if waiting else None)
    else:
        next_to_review = waiting[0] if waiting else None
    return {
        "previous_id": previous_id,
        "next_id": next_id,
        "next_to_review": next_to_review,
        "position": (position + 1) if position is not None else None,
        "count": len(sequence),
        "to_review": len(order.queue),
    }


def _essay_context(
    assignment: Assignment, review: Review, forms_by_id=None, *, version: str | None = None
) -> dict:
    criteria = list(assignment.criteria.all())
    proposals = list(review.submission.proposals.all())
    primary = reviews.primary_proposal(proposals)
    quotes = [q for p in proposals for e in p.criteria.values() for q in e.get("evidence", [])]
    return {
        "course": assignment.course,
        "assignment": assignment,
        "review": review,
        "submission": review.submission,
        "proposals": proposals,
        "primary": primary,
        "essay_html": essay_highlight(
            review.submission.text,
            quotes
            + [
                p
                for f in review.flags
                if f.get("code") == "llm_flag"
                for p in f.get("passages", [])
            ],
            [
                p
                for f in review.flags
                if f.get("code") == "hidden_file"
                for p in f.get("passages", [])
            ],
        ),
        "rows": _criterion_rows(review, criteria, forms_by_id),
        "regrades": list(review.submission.regrade_requests.all()),
        "history": history_lines(selectors.grade_history(submission=review.submission)),
        "versions": selectors.submission_versions(
            assignment=assignment, learner=review.submission.learner
        ),
        "feedback_form": _feedback_form(review, primary),
        "nav": _essay_neighbours(assignment, review.submission_id),
        "version": version or reviews.review_version(submission=review.submission),
    }


def _feedback_form(review: Review, primary: Proposal | None) -> forms.FeedbackForm:
    feedback = reviews.review_feedback(review=review, proposal=primary)
    return forms.FeedbackForm(
        initial={
            "strengths": "\n".join(feedback["strengths"]),
            "next_steps": "\n".join(feedback["next_steps"]),
        }
    )


@require_GET
@login_required
def review_essay(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> HttpResponse:
    assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    return render(request, "grading/review_essay.html", _essay_context(assignment, review))


@require_POST
@login_required
def review_essay_save(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> HttpResponse:
    """The one form of an essay: every criterion saved at once (an audit entry per change);
    with ``next``, on to the next essay to review."""
    assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    criteria = list(assignment.criteria.all())
    shown = {row["criterion"].pk: row for row in _criterion_rows(review, criteria)}
    neighbours = _essay_neighbours(assignment, submission_id)
    posted = {c.pk: forms.EssayCriterionForm(request.POST, prefix=f"c{c.pk}") for c in criteria}
    status = 200
    if all(form.is_valid() for form in posted.values()):
        decisions = []
        for criterion in criteria:
            data = posted[criterion.pk].cleaned_data
            comment = data["comment"]
            if f"c{criterion.pk}-comment" not in request.POST:
                comment = None
            elif comment.strip() == (shown[criterion.pk]["initial_comment"] or "").strip():
                comment = None  # left as shown: not a change
            decisions.append(
                reviews.CriterionDecision(
                    criterion=criterion,
                    score=data["score"],
                    comment=comment,
                    reason=data["reason"],
                )
            )
        try:
            errors = reviews.review_scores_save(
                submission=review.submission,
                decisions=decisions,
                actor=request.user,
                version=request.POST.get("version") or None,
            )
        except reviews.ReviewChangedError as error:
            flash.error(request, " ".join(error.messages))
            status = 409
        else:
            for criterion_id, message in errors.items():
                posted[criterion_id].add_error(None, message)
            if errors:
                status = UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if status == 200:
        flash.success(request, _("Saved."))
        if request.POST.get("then_next"):
            if neighbours["next_to_review"] is None:
                flash.info(request, _("Every essay in the queue is reviewed."))
                return redirect("grading:review", course_id, assignment_id)
            return redirect(
                "grading:review-essay", course_id, assignment_id, neighbours["next_to_review"]
            )
        return redirect("grading:review-essay", course_id, assignment_id, submission_id)
    review = selectors.review_for_teacher(assignment=assignment, submission_id=submission_id)
    context = _essay_context(assignment, review, posted)
    return render(request, "grading/review_essay.html", context, status=status)


@require_POST
@login_required
def criterion_decide(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int, criterion_id: int
) -> HttpResponse:
    """One criterion on its own (the API's and older pages' way; the page posts the whole
    essay to :func:`review_essay_save`)."""
    assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    criterion = get_object_or_404(assignment.criteria.all(), pk=criterion_id)
    form = forms.CriterionDecisionForm(request.POST, prefix=f"c{criterion.pk}")
    status = 200
    if form.is_valid():
        try:
            reviews.criterion_score_set(
                submission=review.submission,
                criterion=criterion,
                score=form.cleaned_data["score"],
                # The one-click approve form sends no comment: the comment stays as it is.
                comment=form.cleaned_data["comment"]
                if f"c{criterion.pk}-comment" in request.POST
                else None,
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
            status = UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if status == 200 and not request.htmx:
        return redirect("grading:review-essay", course_id, assignment_id, submission_id)
    review = selectors.review_for_teacher(assignment=assignment, submission_id=submission_id)
    refused = {criterion.pk: form} if status == UNPROCESSABLE else None
    context = _essay_context(assignment, review, refused)
    if not request.htmx:
        return render(request, "grading/review_essay.html", context, status=status)
    context["row"] = next(r for r in context["rows"] if r["criterion"].pk == criterion.pk)
    context["oob"] = True
    return render(request, "grading/review_essay.html#decision", context, status=status)


@require_POST
@login_required
def release_view(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> HttpResponse:
    _assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    try:
        reviews.review_release(
            review=review,
            actor=request.user,
            acknowledge_flag=request.POST.get("acknowledge_flag") == "on",
        )
    except ValidationError as error:
        flash.error(request, " ".join(error.messages))
    else:
        flash.success(request, _("Grade released to the student."))
    return redirect("grading:review-essay", course_id, assignment_id, submission_id)


@require_POST
@login_required
def feedback_edit(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> HttpResponse:
    _assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    form = forms.FeedbackForm(request.POST)
    if not form.is_valid():
        flash.error(request, _("The feedback could not be saved."))
    else:
        try:
            reviews.review_feedback_set(
                review=review,
                strengths=form.cleaned_data["strengths"].splitlines(),
                next_steps=form.cleaned_data["next_steps"].splitlines(),
                actor=request.user,
            )
        except ValidationError as error:
            flash.error(request, " ".join(error.messages))
        else:
            flash.success(request, _("Feedback saved."))
    return redirect("grading:review-essay", course_id, assignment_id, submission_id)


@require_POST
@login_required
def proposal_retry_view(
    request: UserRequest, course_id: int, assignment_id: int, submission_id: int
) -> HttpResponse:
    _assignment, review = _review_for_teacher(request, course_id, assignment_id, submission_id)
    for proposal in review.submission.proposals.all():
        proposals.proposal_retry(proposal=proposal)
    flash.success(request, _("The AI will try again."))
    return redirect("grading:review-essay", course_id, assignment_id, submission_id)


# --- agreement -------------------------------------------------------------------------


@require_GET
@login_required
def agreement_view(request: UserRequest, course_id: int, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for_teacher(
        user=request.user, course_id=course_id, assignment_id=assignment_id
    )
    report = selectors.agreement_report(assignment=assignment)
    return render(
        request,
        "grading/agreement.html",
        {"course": assignment.course, "assignment": assignment, "report": report},
    )
