from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from learning.models import ReviewCard
from learning.practice import practice_answer
from learning.review import review_schedule, reviews_due

pytestmark = pytest.mark.django_db


def test_a_practised_question_is_scheduled_later_when_answered_well(
    student, make_concept, make_question
):
    concept = make_concept("Photosynthesis")
    right, wrong = make_question(concept, answers=["a"]), make_question(concept, answers=["b"])
    now = timezone.now()
    good = review_schedule(learner=student, question=right, correct=True, now=now)
    again = review_schedule(learner=student, question=wrong, correct=False, now=now)
    assert now + dt.timedelta(hours=12) < again.due < good.due
    assert good.reviews == 1 and good.last_review == now


def test_reviewing_well_again_spaces_the_next_review_further(student, make_concept, make_question):
    question = make_question(make_concept("Photosynthesis"))
    now = timezone.now()
    first = review_schedule(learner=student, question=question, correct=True, now=now)
    first_gap = first.due - now
    second = review_schedule(learner=student, question=question, correct=True, now=first.due)
    assert second.due - first.due > first_gap
    assert ReviewCard.objects.count() == 1 and second.reviews == 2


def test_due_today_lists_cards_due_by_the_end_of_the_day(
    student, other_student, course, make_concept, make_question
):
    concept = make_concept("Photosynthesis")
    due_question, later_question = make_question(concept), make_question(concept)
    past = timezone.now() - dt.timedelta(days=5)
    review_schedule(learner=student, question=due_question, correct=True, now=past)
    review_schedule(learner=student, question=later_question, correct=True)
    review_schedule(learner=other_student, question=due_question, correct=True, now=past)
    due = list(reviews_due(learner=student))
    assert [card.question for card in due] == [due_question]
    assert list(reviews_due(learner=student, course=course)) == due


def test_a_review_answer_counts_as_review_evidence_and_reschedules(
    client, student, course, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    past = timezone.now() - dt.timedelta(days=5)
    review_schedule(learner=student, question=question, correct=True, now=past)
    client.force_login(student)
    home = client.get("/").content.decode()
    assert "Due for review today" in home
    review_url = f"/courses/{course.pk}/practice/?question={question.pk}&amp;review=1"
    assert review_url in home
    page = client.get(review_url.replace("&amp;", "&")).content.decode()
    assert "Review · Photosynthesis" in page
    client.post(
        f"/courses/{course.pk}/practice/answer/",
        {"question": question.pk, "answer": "glucose", "review": "1"},
    )
    card = ReviewCard.objects.get()
    assert card.due > timezone.now() + dt.timedelta(days=1)
    assert question.concept.evidence.get().source == "review"
    assert not list(reviews_due(learner=student))


def test_practice_answers_from_the_service_schedule_once_per_question(
    student, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    practice_answer(learner=student, question=question, answer="glucose")
    practice_answer(learner=student, question=question, answer="glucose")
    assert ReviewCard.objects.get().reviews == 2
