"""The teacher's queue of generated practice questions: approve (with edits) or reject."""

from __future__ import annotations

import pytest

from learning.models import PracticeQuestion
from learning.practice import questions_generate
from tests.learning.learning_fixtures import PHOTOSYNTHESIS

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(make_concept):
    concept = make_concept("Photosynthesis")
    made = questions_generate(concept=concept, texts=[PHOTOSYNTHESIS])
    assert made and all(q.status == PracticeQuestion.Status.PENDING for q in made)
    return made


def _cloze(questions):
    return next(q for q in questions if q.kind == PracticeQuestion.Kind.CLOZE)


def test_students_never_meet_a_question_that_waits(client, student, course, waiting):
    client.force_login(student)
    page = client.get(f"/courses/{course.pk}/practice/").content.decode()
    assert not any(question.prompt in page for question in waiting)
    response = client.get(f"/courses/{course.pk}/practice/?question={waiting[0].pk}")
    assert response.status_code == 404


def test_a_teacher_sees_every_waiting_question_with_its_answers(
    client, teacher, course, waiting, django_assert_max_num_queries
):
    client.force_login(teacher)
    with django_assert_max_num_queries(12):
        page = client.get(f"/courses/{course.pk}/questions/").content.decode()
    for question in waiting:
        assert question.prompt in page
        assert question.answers[0] in page
    assert f"Waiting for review ({len(waiting)})" in page


def test_a_teacher_edits_a_question_and_approves_it(client, teacher, course, waiting):
    question = _cloze(waiting)
    client.force_login(teacher)
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {
            "question": question.pk,
            "decision": "approve",
            "prompt": "_____ turns light energy into chemical energy in green plants.",
            "answers": "Photosynthesis\n photosynthesis of plants \n\n",
            "explanation": "Plants store the energy in glucose.",
        },
    )
    assert response.status_code == 302
    question.refresh_from_db()
    assert question.status == PracticeQuestion.Status.APPROVED
    assert question.prompt == "_____ turns light energy into chemical energy in green plants."
    assert question.answers == ["Photosynthesis", "photosynthesis of plants"]
    assert question.explanation == "Plants store the energy in glucose."
    assert question.reviewed_by == teacher and question.reviewed_at is not None
    # Now a student meets it.
    assert PracticeQuestion.objects.approved().filter(pk=question.pk).exists()


def test_an_edit_that_gives_the_answer_away_is_refused_and_kept_on_screen(
    client, teacher, course, waiting
):
    question = _cloze(waiting)
    before = question.prompt
    client.force_login(teacher)
    typed = "Photosynthesis happens in leaves, and _____ needs light."
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {"question": question.pk, "decision": "approve", "prompt": typed, "answers": ""},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give at least one accepted answer." in page
    assert typed in page
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {
            "question": question.pk,
            "decision": "approve",
            "prompt": typed,
            "answers": "photosynthesis",
        },
    )
    assert response.status_code == 400
    assert "is in the question itself" in response.content.decode()
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {
            "question": question.pk,
            "decision": "approve",
            "prompt": "No blank here.",
            "answers": "x",
        },
    )
    assert "needs a blank" in response.content.decode()
    question.refresh_from_db()
    assert question.status == PracticeQuestion.Status.PENDING and question.prompt == before


def test_rejecting_ignores_the_edits_and_hides_the_question(client, teacher, course, waiting):
    question = waiting[0]
    client.force_login(teacher)
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {"question": question.pk, "decision": "reject", "prompt": "", "answers": ""},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "Question rejected." in response.content.decode()
    assert "<html" not in response.content.decode()
    question.refresh_from_db()
    assert question.status == PracticeQuestion.Status.REJECTED
    page = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert question.prompt not in page
    page = client.get(f"/courses/{course.pk}/questions/?status=rejected").content.decode()
    assert question.prompt in page


def test_a_rename_to_a_prompt_the_concept_has_is_refused(client, teacher, course, waiting):
    short = [q for q in waiting if q.kind == PracticeQuestion.Kind.SHORT_ANSWER]
    assert len(short) >= 2
    first, second = short[:2]
    client.force_login(teacher)
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {
            "question": second.pk,
            "decision": "approve",
            "prompt": first.prompt,
            "answers": "\n".join(second.answers),
        },
    )
    assert response.status_code == 400
    assert "already has a question worded like that" in response.content.decode()


def test_only_the_courses_teachers_see_or_review_the_queue(
    client, student, other_teacher, course, waiting
):
    for user in (student, other_teacher):
        client.force_login(user)
        assert client.get(f"/courses/{course.pk}/questions/").status_code == 404
        response = client.post(
            f"/courses/{course.pk}/questions/review/",
            {"question": waiting[0].pk, "decision": "approve"},
        )
        assert response.status_code == 404
    waiting[0].refresh_from_db()
    assert waiting[0].status == PracticeQuestion.Status.PENDING


def test_the_queue_is_paginated_and_a_refused_edit_stays_in_view(
    client, teacher, course, make_concept, make_question
):
    from learning.views import QUESTIONS_PER_PAGE

    concept = make_concept("Photosynthesis")
    made = [
        make_question(
            concept,
            prompt=f"Plants store energy in _____ ({n}).",
            status=PracticeQuestion.Status.PENDING,
            origin=PracticeQuestion.Origin.MATERIAL,
        )
        for n in range(QUESTIONS_PER_PAGE + 3)
    ]
    client.force_login(teacher)
    first = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert made[0].prompt in first and made[-1].prompt not in first
    assert "Page 1 of 2" in first
    second = client.get(f"/courses/{course.pk}/questions/?status=pending&page=2").content.decode()
    assert made[-1].prompt in second
    response = client.post(
        f"/courses/{course.pk}/questions/review/",
        {"question": made[-1].pk, "decision": "approve", "prompt": "No blank", "answers": "x"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "No blank</textarea>" in page and "needs a blank" in page


def test_a_teacher_approves_the_page_at_once_except_what_needs_an_edit(
    client, teacher, course, make_concept, make_question, other_teacher
):
    concept = make_concept("Photosynthesis")
    fine = [
        make_question(
            concept,
            prompt=f"Plants store energy in _____ ({n}).",
            status=PracticeQuestion.Status.PENDING,
            origin=PracticeQuestion.Origin.LLM,
        )
        for n in range(3)
    ]
    leaky = make_question(
        concept,
        prompt="Glucose is made here: _____ stores glucose.",
        status=PracticeQuestion.Status.PENDING,
        origin=PracticeQuestion.Origin.LLM,
    )
    unseen = make_question(
        concept,
        prompt="Not on the teacher's screen: _____.",
        status=PracticeQuestion.Status.PENDING,
        origin=PracticeQuestion.Origin.LLM,
    )
    ids = [q.pk for q in [*fine, leaky]]
    client.force_login(other_teacher)
    assert (
        client.post(f"/courses/{course.pk}/questions/approve/", {"question": ids}).status_code
        == 404
    )
    client.force_login(teacher)
    page = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert "Approve the 5 questions on this page" in page
    response = client.post(
        f"/courses/{course.pk}/questions/approve/", {"question": ids}, follow=True
    )
    page = response.content.decode()
    assert (
        "3 questions approved." in page and "1 question was left waiting: it needs an edit" in page
    )
    statuses = dict(PracticeQuestion.objects.values_list("pk", "status"))
    assert all(statuses[q.pk] == "approved" for q in fine)
    assert statuses[leaky.pk] == statuses[unseen.pk] == "pending"
