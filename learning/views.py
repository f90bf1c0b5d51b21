"""Pages of the learner model: profile and onboarding, concepts, practice, review, progress."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from learners.http import UserRequest
from learners.models import Concept
from learners.profiles import ProfileForm, profile_for, profile_update
from learners.selectors import course_for_member, course_for_teacher, user_can_teach
from learning import concepts as concept_services
from learning import practice as practice_services
from learning import practice_jobs
from learning.models import PracticeQuestion
from learning.progress import (
    course_student,
    progress_activity,
    progress_class,
    progress_concepts,
)
from learning.review import reviews_due, reviews_upcoming

if TYPE_CHECKING:
    from learners.models import Course, User


logger = logging.getLogger(__name__)


def _id(value: str | None) -> int:
    """A primary key from a form or query value; 0 (matches nothing) when it is not one."""
    return int(value) if value and value.isdigit() else 0


# --- profile and onboarding ---------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def profile(request: UserRequest) -> HttpResponse:
    """The first-login onboarding form, and the same form to edit the profile later."""
    current = profile_for(user=request.user)
    onboarding = current.onboarded_at is None
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            profile_update(user=request.user, **form.cleaned_data)
            # The next page is already in the newly chosen language.
            language = form.cleaned_data["preferred_language"]
            translation.activate(language)
            messages.success(request, _("Your profile is saved."))
            response = redirect("home")
            # The login page after a logout follows it too.
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
            return response
    else:
        form = ProfileForm(initial=ProfileForm.initial_for(user=request.user, profile=current))
    return render(request, "learners/profile.html", {"form": form, "onboarding": onboarding})


# --- concepts (teachers) ------------------------------------------------------------


def _concepts_context(request: UserRequest, course: Course, **extra) -> dict:
    concepts = concept_services.course_concepts(course=course)
    pending = PracticeQuestion.objects.filter(
        concept__course=course, status=PracticeQuestion.Status.PENDING
    ).count()
    edit_id = request.GET.get("edit", "")
    editing = next((c for c in concepts if str(c.pk) == edit_id), None)
    headings = concept_services.section_headings(
        concept_services.material_section_paths(course=course)
    )
    return {
        "course": course,
        "concepts": concepts,
        "editing": editing,
        "pending": pending,
        "suggestions": concept_services.concept_suggestions(course=course, headings=headings),
        "has_material": bool(headings) or concept_services.course_has_material(course=course),
        "llm_available": _llm_available(),
        "generations": practice_jobs.generations_recent(course=course),
        **extra,
    }


def _llm_available() -> bool:
    return bool(settings.LLM_BASE_URL)


@require_GET
@login_required
def concepts_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    return render(request, "learners/concepts.html", _concepts_context(request, course))


@require_POST
@login_required
def concept_save(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    concept = None
    if request.POST.get("concept"):
        concept = get_object_or_404(Concept, pk=_id(request.POST["concept"]), course=course)
    prerequisite_ids = [_id(value) for value in request.POST.getlist("prerequisites")]
    prerequisites = list(Concept.objects.filter(course=course, pk__in=prerequisite_ids))
    try:
        concept_services.concept_save(
            course=course,
            name=request.POST.get("name", ""),
            description=request.POST.get("description", "").strip()[:4000],
            prerequisites=prerequisites,
            concept=concept,
        )
    except ValidationError as error:
        context = _concepts_context(request, course, error=" ".join(error.messages))
        if concept is not None:
            context["editing"] = concept
        return render(request, "learners/concepts.html", context, status=400)
    messages.success(request, _("The concept is saved."))
    return redirect("learning:concepts", course_id=course.pk)


@require_POST
@login_required
def concept_delete(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    concept = get_object_or_404(Concept, pk=_id(request.POST.get("concept")), course=course)
    concept_services.concept_delete(concept=concept)
    messages.success(request, _("The concept is deleted."))
    return redirect("learning:concepts", course_id=course.pk)


@require_POST
@login_required
def concepts_suggest(request: UserRequest, course_id: int) -> HttpResponse:
    """Suggestions from headings the teacher pasted (one per line)."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    headings = request.POST.get("headings", "")[:20000].splitlines()
    context = _concepts_context(request, course)
    context["suggestions"] = concept_services.concept_suggestions(course=course, headings=headings)
    context["suggested_from_paste"] = True
    if request.htmx:
        return render(request, "learners/concepts.html#suggestions", context)
    return render(request, "learners/concepts.html", context)


@require_POST
@login_required
def concepts_accept(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    created = concept_services.concepts_accept(course=course, names=request.POST.getlist("name"))
    messages.success(request, _("%(count)d concepts added.") % {"count": len(created)})
    return redirect("learning:concepts", course_id=course.pk)


@require_POST
@login_required
def questions_generate(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    concept = get_object_or_404(Concept, pk=_id(request.POST.get("concept")), course=course)
    text = request.POST.get("text", "")[:50000]
    use_llm = request.POST.get("use_llm") == "1" and _llm_available()
    if use_llm:
        # A tracked job: its row shows on the concepts page (queued, writing, done or
        # failed and why); if the broker is away it waits for the recovery sweep.
        practice_jobs.generation_request(concept=concept, requested_by=request.user, text=text)
        messages.success(
            request,
            _(
                "The language model is writing questions; this page shows how it is going, "
                "and they appear below for your review."
            ),
        )
        return redirect("learning:concepts", course_id=course.pk)
    texts = (
        [text] if text.strip() else concept_services.material_texts(course=course, concept=concept)
    )
    created = practice_services.questions_generate(concept=concept, texts=texts)
    if created:
        messages.success(
            request,
            _(
                "%(count)d questions made from the material. They wait for your approval "
                "under “Questions to approve” before students see them."
            )
            % {"count": len(created)},
        )
    else:
        messages.error(request, _("No questions could be made: paste some material text first."))
    return redirect("learning:concepts", course_id=course.pk)


QUESTIONS_PER_PAGE = 20


def _questions_context(request: UserRequest, course: Course, *, shown=None, **extra) -> dict:
    """The approval queue: one status at a time (waiting by default), paginated; ``shown``
    replaces a question on the page by its unsaved edit after a failed review."""
    statuses = dict(PracticeQuestion.Status.choices)
    status = request.GET.get("status") or request.POST.get("status") or "pending"
    if status not in statuses:
        status = PracticeQuestion.Status.PENDING
    questions = (
        PracticeQuestion.objects.filter(concept__course=course, status=status)
        .select_related("concept", "reviewed_by")
        .order_by("concept__name", "id")
    )
    page = Paginator(questions, QUESTIONS_PER_PAGE).get_page(request.GET.get("page"))
    items = [shown if shown is not None and q.pk == shown.pk else q for q in page]
    if shown is not None and all(q is not shown for q in items):
        items.insert(0, shown)  # it was on another page: keep it, and its errors, in view
    counts = dict(
        PracticeQuestion.objects.filter(concept__course=course)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return {
        "course": course,
        "status": status,
        "tabs": [(value, label, counts.get(value, 0)) for value, label in statuses.items()],
        "page": page,
        "questions": items,
        "blank": practice_services.BLANK,
        **extra,
    }


@require_GET
@login_required
def questions_page(request: UserRequest, course_id: int) -> HttpResponse:
    """Generated practice questions for the teacher to approve, edit or reject."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    return render(request, "learners/questions.html", _questions_context(request, course))


@require_POST
@login_required
def question_review(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    question = get_object_or_404(
        PracticeQuestion.objects.select_related("concept"),
        pk=_id(request.POST.get("question")),
        concept__course=course,
    )
    approve = request.POST.get("decision") == "approve"
    status = request.POST.get("status")
    if status not in PracticeQuestion.Status.values:
        status = PracticeQuestion.Status.PENDING
    edits: dict[str, Any] = {}
    if "prompt" in request.POST:
        edits = {
            "prompt": request.POST.get("prompt", ""),
            "answers": request.POST.get("answers", "").splitlines(),
            "explanation": request.POST.get("explanation", ""),
        }
    try:
        practice_services.question_review(
            question=question, reviewer=request.user, approve=approve, **edits
        )
    except ValidationError as error:
        # Keep what the teacher typed on screen, with the reasons beside it.
        question.prompt = edits["prompt"][:2000]
        question.answers = [a for a in edits["answers"] if a.strip()][:20]
        question.explanation = edits["explanation"][:4000]
        question.review_errors = error.messages
        if request.htmx:
            return render(
                request,
                "learners/questions.html#question",
                {"question": question, "course": course},
            )
        context = _questions_context(request, course, shown=question)
        return render(request, "learners/questions.html", context, status=400)
    done = _("Question approved.") if approve else _("Question rejected.")
    if request.htmx:
        return render(
            request,
            "learners/questions.html#question",
            {"question": question, "course": course, "done": done},
        )
    messages.success(request, done)
    url = reverse("learning:questions", args=[course.pk])
    return redirect(f"{url}?status={status}")


@require_POST
@login_required
def questions_approve(request: UserRequest, course_id: int) -> HttpResponse:
    """Approve, as they stand, the waiting questions the teacher had on screen."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    ids = [_id(value) for value in request.POST.getlist("question")][:QUESTIONS_PER_PAGE]
    questions = PracticeQuestion.objects.filter(
        concept__course=course, pk__in=ids, status=PracticeQuestion.Status.PENDING
    ).select_related("concept")
    approved, held = practice_services.questions_approve(
        questions=list(questions), reviewer=request.user
    )
    messages.success(
        request,
        ngettext("%(count)d question approved.", "%(count)d questions approved.", len(approved))
        % {"count": len(approved)},
    )
    if held:
        messages.error(
            request,
            ngettext(
                "%(count)d question was left waiting: it needs an edit first (no blank, no "
                "answer, or the answer in the question).",
                "%(count)d questions were left waiting: they need an edit first (no blank, "
                "no answer, or the answer in the question).",
                len(held),
            )
            % {"count": len(held)},
        )
    return redirect("learning:questions", course_id=course.pk)


# --- practice and review (course members) --------------------------------------------


@require_GET
@login_required
def practice_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    is_review = request.GET.get("review") == "1"
    question = None
    if request.GET.get("question"):
        question = (
            PracticeQuestion.objects.approved()
            .filter(pk=_id(request.GET["question"]), concept__course=course)
            .select_related("concept")
            .first()
        )
        if question is None:
            raise Http404("No such question in this course.")
    else:
        is_review = False
        question = practice_services.practice_next(learner=request.user, course=course)
    context = {
        "course": course,
        "question": question,
        "is_review": is_review,
        "due": reviews_due(learner=request.user, course=course)[:20],
        "max_answer": practice_services.MAX_ANSWER_CHARS,
    }
    return render(request, "learners/practice.html", context)


@require_POST
@login_required
def practice_answer(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    question = get_object_or_404(
        PracticeQuestion.objects.approved().select_related("concept__course"),
        pk=_id(request.POST.get("question")),
        concept__course=course,
    )
    is_review = request.POST.get("review") == "1"
    context = {
        "course": course,
        "question": question,
        "is_review": is_review,
        "answer": request.POST.get("answer", "")[: practice_services.MAX_ANSWER_CHARS + 1],
        "max_answer": practice_services.MAX_ANSWER_CHARS,
    }
    try:
        result = practice_services.practice_answer(
            learner=request.user,
            question=question,
            answer=request.POST.get("answer", ""),
            is_review=is_review,
        )
    except ValidationError as error:
        context["error"] = " ".join(error.messages)
        template = "learners/practice.html#question" if request.htmx else "learners/practice.html"
        return render(request, template, context, status=400 if not request.htmx else 200)
    context["result"] = result
    context["next_url"] = reverse("learning:practice", args=[course.pk])
    if request.htmx:
        return render(request, "learners/practice.html#question", context)
    context["due"] = reviews_due(learner=request.user, course=course)[:20]
    return render(request, "learners/practice.html", context)


# --- progress ---------------------------------------------------------------------


def _student_progress_context(*, learner: User, course: Course) -> dict:
    concept_rows = progress_concepts(learner=learner, course=course)
    activity = progress_activity(learner=learner, course=course)
    return {
        "course": course,
        "learner": learner,
        "concept_rows": concept_rows,
        "activity": activity,
        "activity_total": sum(day.answers for day in activity),
        "due": list(reviews_due(learner=learner, course=course)[:20]),
        "upcoming": list(reviews_upcoming(learner=learner, course=course)),
        "chart": {
            "mastery": {
                "labels": [row.concept.name for row in concept_rows],
                # No bar where the table says "Not enough data": the chart says it too.
                "values": [
                    row.estimate.percent if row.estimate.enough_data else None
                    for row in concept_rows
                ],
                "notes": [row.estimate.label for row in concept_rows],
            },
            "activity": {
                "labels": [day.day.isoformat() for day in activity],
                "answers": [day.answers for day in activity],
                "correct": [day.correct for day in activity],
            },
        },
    }


@require_GET
@login_required
def progress_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    context = _student_progress_context(learner=request.user, course=course)
    context["own"] = True
    context["is_teacher"] = user_can_teach(user=request.user, course=course)
    return render(request, "learners/progress.html", context)


@require_GET
@login_required
def progress_class_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    return render(
        request,
        "learners/progress_class.html",
        {"course": course, "progress": progress_class(course=course)},
    )


@require_GET
@login_required
def progress_student_page(request: UserRequest, course_id: int, student_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    learner = course_student(course=course, student_id=student_id)
    if learner is None:
        raise Http404("No such student in this course.")
    context = _student_progress_context(learner=learner, course=course)
    context["own"] = False
    context["is_teacher"] = True
    return render(request, "learners/progress.html", context)
