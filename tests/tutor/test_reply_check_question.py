"""Passages are tagged with the concepts their headings name; a reply citing them asks a
teacher-approved question on such a concept, and the learner's answer is evidence for the
learner model (source "tutor")."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse

from learners.models import Concept
from learning.concepts import concept_save
from learning.models import ConceptMastery, MasteryEvidence, PracticeQuestion
from learning.practice import check_question_for
from material.concept_tags import chunks_tag_concepts, passage_concept_ids
from material.models import Chunk
from tests.material.material_files import MARKDOWN, media_root  # noqa: F401
from tutor.conversations import message_post, reply_check_answer
from tutor.models import Message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def material(course):
    from material.services import material_ingest, material_upload

    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="cells.md"))
    material_ingest(material_id=material.pk)
    return material


@pytest.fixture
def photosynthesis(course, material):
    return concept_save(course=course, name="Photosynthesis")


@pytest.fixture
def question(photosynthesis, teacher):
    return PracticeQuestion.objects.create(
        concept=photosynthesis,
        kind=PracticeQuestion.Kind.CLOZE,
        prompt="Chloroplasts hold the green pigment _____.",
        answers=["chlorophyll"],
        explanation="Chlorophyll absorbs the light photosynthesis runs on.",
        origin=PracticeQuestion.Origin.TEACHER,
        status=PracticeQuestion.Status.APPROVED,
    )


def _tagged(concept) -> set[str]:
    return {chunk.section for chunk in Chunk.objects.filter(concepts=concept)}


def test_a_new_concept_tags_the_passages_under_its_heading(photosynthesis):
    assert _tagged(photosynthesis) == {"Cell Energy › Photosynthesis"}


def test_ingesting_material_tags_it_with_the_concepts_the_course_has(course, make_course):
    from material.services import material_ingest, material_upload

    respiration = concept_save(course=course, name="Respiration")
    assert not _tagged(respiration)  # no material yet
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    material_ingest(material_id=material.pk)
    assert _tagged(respiration) == {"Cell Energy › Respiration"}
    # Tagging again adds nothing twice, and another course's concepts never tag these.
    assert chunks_tag_concepts(course=course) == 0
    concept_save(course=make_course(), name="Respiration")
    assert Chunk.concepts.through.objects.count() == 1


def test_concepts_come_in_the_order_of_the_passages(course, material, photosynthesis):
    respiration = concept_save(course=course, name="Respiration")
    by_section = dict(Chunk.objects.values_list("section", "id"))
    ids = [
        by_section["Cell Energy › Respiration"],
        None,
        by_section["Cell Energy › Photosynthesis"],
    ]
    assert passage_concept_ids(chunk_ids=ids) == [respiration.pk, photosynthesis.pk]


def _offline_reply(conversation, student, settings, capture):
    settings.LLM_BASE_URL = ""
    with capture(execute=True):
        _question, reply = message_post(
            conversation=conversation, learner=student, text="Where is chlorophyll?"
        )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    return reply


def test_a_reply_citing_a_tagged_passage_asks_the_concepts_question_and_the_answer_counts(
    client,
    conversation,
    student,
    course,
    question,
    eager_tasks,
    settings,
    django_capture_on_commit_callbacks,
):
    reply = _offline_reply(conversation, student, settings, django_capture_on_commit_callbacks)
    assert reply.check_question == question

    client.force_login(student)
    page = client.get(
        reverse("conversations:detail", args=[course.pk, conversation.pk])
    ).content.decode()
    assert "Check your understanding" in page
    assert question.prompt in page

    url = reverse("conversations:check", args=[course.pk, reply.pk])
    empty = client.post(url, {"answer": "  "}, **HTMX)
    assert "Write an answer first." in empty.content.decode()
    assert not MasteryEvidence.objects.exists()

    answered = client.post(url, {"answer": "Chlorophyll"}, **HTMX).content.decode()
    assert "Correct!" in answered
    assert question.explanation in answered
    evidence = MasteryEvidence.objects.get()
    assert (evidence.learner, evidence.concept, evidence.correct) == (
        student,
        question.concept,
        True,
    )
    assert evidence.source == MasteryEvidence.Source.TUTOR
    assert ConceptMastery.objects.get(learner=student, concept=question.concept).attempts == 1

    again = client.post(url, {"answer": "chlorophyll"}, **HTMX).content.decode()
    assert "You have answered this question already." in again
    assert MasteryEvidence.objects.count() == 1


def test_a_wrong_answer_is_evidence_too_and_shows_what_was_expected(
    conversation, student, question, eager_tasks, settings, django_capture_on_commit_callbacks
):
    reply = _offline_reply(conversation, student, settings, django_capture_on_commit_callbacks)
    result = reply_check_answer(reply=reply, learner=student, answer="mitochondria")
    assert not result.check.correct
    assert MasteryEvidence.objects.get().correct is False


def test_no_question_without_tagged_passages_or_approved_questions(
    conversation,
    student,
    photosynthesis,
    eager_tasks,
    settings,
    django_capture_on_commit_callbacks,
):
    PracticeQuestion.objects.create(
        concept=photosynthesis,
        kind=PracticeQuestion.Kind.CLOZE,
        prompt="Waiting for the teacher _____.",
        answers=["x"],
        origin=PracticeQuestion.Origin.MATERIAL,
    )  # pending review: never asked
    reply = _offline_reply(conversation, student, settings, django_capture_on_commit_callbacks)
    assert reply.check_question is None
    with pytest.raises(ValidationError, match="no question"):
        reply_check_answer(reply=reply, learner=student, answer="x")


def test_a_mastered_concept_is_not_checked_again(
    conversation,
    student,
    question,
    eager_tasks,
    settings,
    django_capture_on_commit_callbacks,
):
    ConceptMastery.objects.create(
        learner=student, concept=question.concept, probability=0.99, attempts=12, enough_data=True
    )
    reply = _offline_reply(conversation, student, settings, django_capture_on_commit_callbacks)
    assert reply.check_question is None


def test_an_admin_tags_a_passage_by_hand_with_a_concept_of_its_course_only(
    client, staff_user, course, make_course, material, photosynthesis
):
    respiration = concept_save(course=course, name="Respiration")
    elsewhere = concept_save(course=make_course(), name="Photosynthesis")
    chunk = Chunk.objects.get(section="Cell Energy › Photosynthesis")
    url = reverse("admin:material_chunk_change", args=[chunk.pk])
    client.force_login(staff_user)
    assert client.get(url).status_code == 200

    refused = client.post(url, {"concepts": [elsewhere.pk]})
    assert refused.status_code == 200  # the form again, with the error
    assert set(chunk.concepts.all()) == {photosynthesis}

    saved = client.post(url, {"concepts": [photosynthesis.pk, respiration.pk]})
    assert saved.status_code == 302
    assert set(chunk.concepts.all()) == {photosynthesis, respiration}
    assert chunk.text == Chunk.objects.get(pk=chunk.pk).text  # read-only fields untouched


def test_the_check_question_is_on_the_first_concept_not_mastered_with_one_approved(
    course, student, other_student, teacher, django_assert_num_queries
):
    def concept(name, *, approved=True, mastery=None, enough_data=True, learner=student):
        made = Concept.objects.create(course=course, name=name)
        PracticeQuestion.objects.create(
            concept=made,
            kind=PracticeQuestion.Kind.CLOZE,
            prompt=f"{name} _____.",
            answers=["x"],
            origin=PracticeQuestion.Origin.TEACHER,
            status="approved" if approved else "pending",
        )
        if mastery is not None:
            ConceptMastery.objects.create(
                learner=learner, concept=made, probability=mastery, enough_data=enough_data
            )
        return made.pk

    ids = [
        concept("Mastered", mastery=0.99),
        concept("Unapproved", approved=False),
        concept("Mastered by someone else", mastery=0.99, learner=other_student),
        concept("Last"),
    ]
    with django_assert_num_queries(2):
        asked = check_question_for(learner=student, concept_ids=ids)
    assert asked.prompt == "Mastered by someone else _____."
    # An estimate without enough data is no mastery yet.
    unsure = concept("Unsure", mastery=0.99, enough_data=False)
    assert check_question_for(learner=student, concept_ids=[ids[0], unsure]).concept_id == unsure
    assert check_question_for(learner=student, concept_ids=ids[:2]) is None
