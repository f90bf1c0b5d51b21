from __future__ import annotations

import json
import re

import pytest
from django.core.exceptions import ValidationError

from ai.llm import SERVER_MAX_LENGTH
from learning.evidence import mastery_evidence_record
from learning.models import (
    ConceptMastery,
    MasteryEvidence,
    PracticeAttempt,
    PracticeQuestion,
    QuestionGeneration,
    ReviewCard,
)
from learning.practice import (
    answer_check,
    normalise,
    practice_answer,
    practice_next,
    questions_draft_offline,
    questions_generate,
)
from tests.learning.learning_fixtures import PHOTOSYNTHESIS

pytestmark = pytest.mark.django_db


def test_offline_questions_come_from_key_sentences_of_the_material(make_concept):
    concept = make_concept("Photosynthesis", description="how plants make food from light")
    drafts = questions_draft_offline(concept=concept, texts=[PHOTOSYNTHESIS])
    kinds = {d.kind for d in drafts}
    assert kinds == {"cloze", "short_answer"}
    cloze = next(d for d in drafts if d.kind == "cloze")
    assert cloze.prompt.startswith("_____ is the process")
    assert cloze.answers == ["Photosynthesis"]
    short = next(d for d in drafts if d.kind == "short_answer")
    assert short.prompt == "What is photosynthesis?"
    assert "glucose" in short.answers
    # A question in the material is never turned into a statement to complete.
    assert not any("autumn" in d.prompt for d in drafts)


def test_spanish_material_gets_spanish_questions(make_concept):
    concept = make_concept("Fotosíntesis")
    text = (
        "La fotosíntesis es el proceso por el cual las plantas verdes transforman la energía "
        "de la luz en energía química. Ocurre en los cloroplastos de las células de las hojas."
    )
    prompts = [d.prompt for d in questions_draft_offline(concept=concept, texts=[text])]
    assert "¿Qué es la fotosíntesis?" in prompts
    assert "Ocurre en los _____ de las células de las hojas." in prompts


def test_material_questions_wait_for_a_teacher_and_are_not_stored_twice(make_concept):
    concept = make_concept("Photosynthesis")
    first = questions_generate(concept=concept, texts=[PHOTOSYNTHESIS])
    assert first and all(q.status == PracticeQuestion.Status.PENDING for q in first)
    assert all(q.origin == PracticeQuestion.Origin.MATERIAL for q in first)
    assert questions_generate(concept=concept, texts=[PHOTOSYNTHESIS]) == []


def test_the_models_copied_sentence_becomes_a_cloze_with_its_term_blanked(make_concept, llm_server):
    # What a small model writes well: a sentence of the material (a word off, the full stop
    # dropped) and a term of it with an article; the product makes the blank.
    llm_server.script(
        json_reply={
            "sentence": "It takes place in chloroplasts of leaf cells",
            "answer": "the chloroplasts",
        }
    )
    concept = make_concept("Photosynthesis")
    saved = questions_generate(concept=concept, texts=[PHOTOSYNTHESIS], use_llm=True)
    assert [q.prompt for q in saved] == ["It takes place in the _____ of leaf cells."]
    assert saved[0].answers == ["chloroplasts"]
    assert saved[0].kind == PracticeQuestion.Kind.CLOZE
    assert saved[0].source_text == "It takes place in the chloroplasts of leaf cells."


@pytest.mark.parametrize(
    ("sentence", "answer"),
    [
        # The worked example of the prompt, copied instead of the material.
        ("It pumps blood through the arteries to every part of the body.", "arteries"),
        # A sentence the material does not have.
        ("The Calvin cycle uses light to make oxygen in the mitochondria.", "mitochondria"),
        # The material's sentence, a term that is not in it.
        ("Chlorophyll is the green pigment that absorbs red and blue light.", "ketosis"),
        # The whole sentence as the answer: nothing left to answer from.
        ("The Calvin cycle uses carbon dioxide", "The Calvin cycle uses carbon dioxide"),
        # No content word to fill in.
        ("Chlorophyll is the green pigment that absorbs red and blue light.", "is the"),
    ],
)
def test_a_copied_sentence_is_kept_only_when_grounded_in_the_material(sentence, answer):
    from learning.practice import cloze_from_copy, llm_sentences

    assert (
        cloze_from_copy(
            copy=sentence, answer=answer, sentences=llm_sentences(PHOTOSYNTHESIS), language="en"
        )
        is None
    )


def test_a_misspelt_term_and_a_copy_of_two_sentences_are_read_as_the_material_has_them():
    from learning.practice import cloze_from_copy, llm_sentences

    draft = cloze_from_copy(
        copy="Photosynthesis is the process. It takes place in the chloroplasts of leaf cells.",
        answer="chloroplastes",
        sentences=llm_sentences(PHOTOSYNTHESIS),
        language="en",
    )
    assert draft is not None
    assert draft.prompt == "It takes place in the _____ of leaf cells."
    assert draft.answers == ["chloroplasts"]


def test_list_items_are_sentences_of_their_own():
    from learning.practice import llm_sentences

    text = (
        "Three factors limit the rate:\n\n- light intensity speeds the light reactions;\n"
        "- temperature slows the enzymes down."
    )
    assert llm_sentences(text) == [
        "Three factors limit the rate:",
        "light intensity speeds the light reactions;",
        "temperature slows the enzymes down.",
    ]


def test_llm_questions_wait_for_a_teacher(make_concept, llm_server, client, teacher, course):
    llm_server.script(
        json_reply={
            "sentence": "Chlorophyll is the green pigment that absorbs red and blue light.",
            "answer": "Chlorophyll",
        }
    )
    concept = make_concept("Photosynthesis")
    saved = questions_generate(concept=concept, texts=[PHOTOSYNTHESIS], use_llm=True)
    assert [q.prompt for q in saved] == [
        "_____ is the green pigment that absorbs red and blue light."
    ]
    question = saved[0]
    assert question.status == PracticeQuestion.Status.PENDING
    assert question.generation["prompt_version"] == "practice-questions-v2"
    body = llm_server.chat_bodies[0]
    assert body["response_format"]["json_schema"]["name"] == "practice_question"
    assert body["max_tokens"] == 256  # its own bound, not the tutor's LLM_MAX_TOKENS
    assert "<material>" in body["messages"][-1]["content"]
    # The sentence used once is not offered again.
    assert "Chlorophyll is" not in llm_server.chat_bodies[1]["messages"][-1]["content"]
    assert practice_next(learner=teacher, course=course) is None  # not visible yet
    client.force_login(teacher)
    client.post(
        f"/courses/{course.pk}/questions/review/",
        {"question": question.pk, "decision": "approve"},
    )
    question.refresh_from_db()
    assert question.status == PracticeQuestion.Status.APPROVED
    assert question.reviewed_by == teacher


@pytest.mark.parametrize(
    ("answer", "correct"),
    [("glucose", True), ("  Glucose. ", True), ("the glucose", True), ("sugar", False)],
)
def test_cloze_answers_match_after_normalising(make_concept, make_question, answer, correct):
    question = make_question(make_concept("Photosynthesis"), answers=["glucose"])
    assert answer_check(question=question, answer=answer).correct is correct


def test_accents_and_case_do_not_matter():
    assert normalise("La Fotosíntesis!") == normalise("fotosintesis")


def test_short_answers_need_half_the_key_terms(make_concept, make_question):
    question = make_question(
        make_concept("Photosynthesis"),
        kind="short_answer",
        prompt="What is photosynthesis?",
        answers=["plants", "chemical", "glucose"],
    )
    good = answer_check(question=question, answer="Plants make chemical energy")
    assert good.correct and good.missing == ["glucose"]
    assert not answer_check(question=question, answer="It happens in leaves").correct


@pytest.mark.parametrize(
    ("answer", "message"), [("   ", "Write an answer"), ("x" * 501, "too long")]
)
def test_empty_and_huge_answers_are_rejected_with_a_message(
    client, student, course, make_concept, make_question, answer, message
):
    question = make_question(make_concept("Photosynthesis"))
    with pytest.raises(ValidationError):
        practice_answer(learner=student, question=question, answer=answer)
    client.force_login(student)
    response = client.post(
        f"/courses/{course.pk}/practice/answer/", {"question": question.pk, "answer": answer}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not PracticeAttempt.objects.exists() and not MasteryEvidence.objects.exists()


def test_answering_records_evidence_moves_mastery_and_schedules_a_review(
    client, student, course, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    client.force_login(student)
    page = client.get(f"/courses/{course.pk}/practice/").content.decode()
    assert question.prompt in page
    response = client.post(
        f"/courses/{course.pk}/practice/answer/",
        {"question": question.pk, "answer": "Glucose"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "Correct!" in html
    assert "Photosynthesis makes glucose" in html  # the explanation
    assert "Next review" in html
    assert "<html" not in html
    estimate = ConceptMastery.objects.get(learner=student, concept=question.concept)
    assert estimate.probability > 0.5 and estimate.attempts == 1
    assert not estimate.enough_data
    card = ReviewCard.objects.get(learner=student, question=question)
    assert card.due.date() > card.last_review.date()
    evidence = MasteryEvidence.objects.get()
    assert (evidence.correct, evidence.source) == (True, "practice")


def test_mastery_falls_after_wrong_answers_and_is_informed_after_three(
    student, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    results = [
        practice_answer(learner=student, question=question, answer="sugar") for _ in range(3)
    ]
    probabilities = [r.mastery.probability for r in results]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[-1] < 0.3
    assert results[-1].mastery.enough_data


def test_evidence_from_the_tutor_counts_too(student, make_concept):
    concept = make_concept("Photosynthesis")
    estimate = mastery_evidence_record(
        learner=student, concept=concept, correct=True, source="tutor"
    )
    assert estimate.attempts == 1
    with pytest.raises(ValueError):
        mastery_evidence_record(learner=student, concept=concept, correct=True, source="gossip")


def test_the_next_question_waits_for_prerequisites(student, course, make_concept, make_question):
    basics = make_concept("Light")
    advanced = make_concept("Photosynthesis", prerequisites=[basics])
    basic_question = make_question(basics, answers=["light"])
    make_question(advanced)
    assert practice_next(learner=student, course=course) == basic_question
    for _ in range(6):
        practice_answer(learner=student, question=basic_question, answer="light")
    assert ConceptMastery.objects.get(concept=basics).probability >= 0.85
    chosen = practice_next(learner=student, course=course)
    assert chosen.concept == advanced  # Light is mastered and unlocks Photosynthesis


def test_a_prerequisite_with_no_questions_does_not_block(
    student, course, make_concept, make_question
):
    unpractised = make_concept("Light")
    question = make_question(make_concept("Photosynthesis", prerequisites=[unpractised]))
    assert practice_next(learner=student, course=course) == question


def test_practice_prefers_concepts_near_the_edge_of_mastery(
    student, course, make_concept, make_question
):
    weak = make_concept("Weak")
    fresh = make_concept("Fresh")
    make_question(weak, answers=["a"])
    fresh_question = make_question(fresh, answers=["b"])
    for _ in range(3):
        mastery_evidence_record(learner=student, concept=weak, correct=False, source="tutor")
    # 0.5 (no data) is nearer 0.65 than the weak concept's low estimate.
    assert practice_next(learner=student, course=course) == fresh_question


def test_unseen_questions_come_before_seen_ones(student, course, make_concept, make_question):
    concept = make_concept("Photosynthesis")
    first = make_question(concept, answers=["a"])
    second = make_question(concept, answers=["b"])
    practice_answer(learner=student, question=first, answer="wrong")
    assert practice_next(learner=student, course=course) == second


def test_strangers_cannot_answer_a_course_question(
    client, other_student, course, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    client.force_login(other_student)
    response = client.post(
        f"/courses/{course.pk}/practice/answer/", {"question": question.pk, "answer": "glucose"}
    )
    assert response.status_code == 404
    assert not PracticeAttempt.objects.exists()


def test_a_teacher_makes_questions_from_pasted_text(client, teacher, course, make_concept):
    concept = make_concept("Photosynthesis")
    client.force_login(teacher)
    client.post(
        f"/courses/{course.pk}/questions/generate/",
        {"concept": concept.pk, "text": PHOTOSYNTHESIS},
    )
    made = PracticeQuestion.objects.filter(concept=concept)
    assert made.count() >= 3 and not made.approved().exists()
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert f"{made.count()} generated questions wait for your approval" in page
    page = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert all(question.prompt in page for question in made)


def test_a_course_with_enough_answers_gets_its_own_fitted_model(
    student, other_student, course, make_concept
):
    from learning.evidence import MIN_RESPONSES_TO_FIT, mastery_course_fit, mastery_model_for
    from learning.models import CourseMasteryModel

    easy, hard = make_concept("Easy"), make_concept("Hard")
    assert mastery_course_fit(course=course) is None  # no log yet: the default stays
    rows = []
    for i in range(MIN_RESPONSES_TO_FIT // 2):
        learner = student if i % 2 else other_student
        rows.append(
            MasteryEvidence(learner=learner, concept=easy, correct=i % 5 != 0, source="practice")
        )
        rows.append(
            MasteryEvidence(learner=learner, concept=hard, correct=i % 5 == 0, source="practice")
        )
    MasteryEvidence.objects.bulk_create(rows)
    fitted = mastery_course_fit(course=course)
    assert fitted == CourseMasteryModel.objects.get(course=course)
    assert fitted.responses == MIN_RESPONSES_TO_FIT
    model = mastery_model_for(course=course)
    assert model.name == fitted.params["model"]
    estimates = {row.concept: row for row in ConceptMastery.objects.filter(learner=student)}
    assert estimates[easy].probability > 0.6 > estimates[hard].probability
    assert estimates[easy].enough_data


@pytest.mark.django_db(transaction=True)
def test_llm_questions_are_written_by_a_real_worker(
    celery_worker, llm_server, client, teacher, course, make_concept
):
    import time

    llm_server.script(
        json_reply={
            "sentence": "The Calvin cycle uses carbon dioxide from the air to build sugars.",
            "answer": "carbon dioxide",
        }
    )
    concept = make_concept("Photosynthesis")
    client.force_login(teacher)
    client.post(
        f"/courses/{course.pk}/questions/generate/",
        {"concept": concept.pk, "text": PHOTOSYNTHESIS, "use_llm": "1"},
    )
    deadline = time.monotonic() + 60
    while not PracticeQuestion.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    question = PracticeQuestion.objects.get()
    assert question.status == PracticeQuestion.Status.PENDING
    assert question.origin == PracticeQuestion.Origin.LLM
    generation = QuestionGeneration.objects.get(concept=concept)
    while generation.status != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
        generation.refresh_from_db()
    assert (generation.status, generation.questions_created) == ("done", 1)
    page = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert "The Calvin cycle uses _____ from the air to build sugars." in page
    concepts_page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert "1 question to review." in concepts_page
    # No long maxLength reaches the server's grammar compiler.
    bounds = re.findall(r'"maxLength": (\d+)', json.dumps(llm_server.stats.last_request))
    assert bounds and all(int(b) <= SERVER_MAX_LENGTH for b in bounds)


def test_a_question_job_the_server_refuses_fails_at_once_and_says_why(
    llm_server,
    settings,
    client,
    teacher,
    course,
    make_concept,
    django_capture_on_commit_callbacks,
    eager_tasks,
):
    settings.LLM_MAX_RETRIES = 3
    llm_server.fail_next(10, status=400, message="json_schema: grammar too large")
    concept = make_concept("Photosynthesis")
    client.force_login(teacher)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/courses/{course.pk}/questions/generate/",
            {"concept": concept.pk, "text": PHOTOSYNTHESIS, "use_llm": "1"},
        )
    generation = QuestionGeneration.objects.get(concept=concept)
    assert generation.status == QuestionGeneration.Status.FAILED
    assert generation.error.startswith("LLMUnsupported:")
    assert llm_server.stats.chat_requests == 3  # one try per structured-output form
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert "does not support what the product asked for" in page


def test_a_job_whose_questions_were_all_unusable_says_so(
    llm_server,
    client,
    teacher,
    course,
    make_concept,
    django_capture_on_commit_callbacks,
    eager_tasks,
):
    # What SmolLM2 wrote: no sentence of the material, an answer not in it.
    llm_server.script(
        json_reply={
            "sentence": "What is the answer to this question?",
            "answer": "photosynthesis",
        }
    )
    concept = make_concept("Photosynthesis")
    client.force_login(teacher)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/courses/{course.pk}/questions/generate/",
            {"concept": concept.pk, "text": PHOTOSYNTHESIS, "use_llm": "1"},
        )
    generation = QuestionGeneration.objects.get(concept=concept)
    assert (generation.status, generation.questions_created) == ("done", 0)
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert "The model wrote no question that could be used" in page
    assert "0 questions to review" not in page


def test_a_lost_question_job_is_sent_again_by_the_recovery_sweep(
    llm_server, settings, teacher, make_concept, django_capture_on_commit_callbacks, eager_tasks
):
    from config.recovery import work_recover
    from learning.practice_jobs import generation_request

    llm_server.script(
        json_reply={
            "sentence": "Osmosis moves water across a membrane.",
            "answer": "water",
        }
    )
    settings.WORK_REQUEUE_SECONDS = 0
    concept = make_concept("Osmosis")
    generation = generation_request(
        concept=concept, requested_by=teacher, text="Osmosis moves water across a membrane."
    )
    # Its task message was lost (no on-commit run here); the sweep finds the lapsed lease.
    with django_capture_on_commit_callbacks(execute=True):
        counts = work_recover()
    assert counts["question_generations"] == 1
    generation.refresh_from_db()
    assert (generation.status, generation.questions_created) == ("done", 1)


def test_malformed_ids_are_not_found_not_errors(client, teacher, student, course):
    client.force_login(teacher)
    assert (
        client.post(f"/courses/{course.pk}/practice/answer/", {"question": "x"}).status_code == 404
    )
    assert (
        client.post(f"/courses/{course.pk}/concepts/delete/", {"concept": "1;"}).status_code == 404
    )
    response = client.post(
        f"/courses/{course.pk}/concepts/save/", {"name": "Atoms", "prerequisites": ["a", "1"]}
    )
    assert response.status_code == 302
    client.force_login(student)
    assert client.get(f"/courses/{course.pk}/practice/?question=abc").status_code == 404


def test_the_api_serves_the_next_question_and_takes_answers(
    client, student, course, make_concept, make_question
):
    question = make_question(make_concept("Photosynthesis"))
    client.force_login(student)
    api = f"/api/courses/{course.pk}/"
    nxt = client.get(api + "practice/next/").json()
    assert nxt == {
        "id": question.pk,
        "concept_id": question.concept_id,
        "concept": "Photosynthesis",
        "kind": "cloze",
        "prompt": question.prompt,
    }
    assert "answers" not in nxt  # the answer is not handed out with the question
    empty = client.post(
        api + "practice/answers/", {"question": question.pk, "answer": " "}, "application/json"
    )
    assert empty.status_code == 400
    assert empty.json() == {"answer": ["Write an answer first."]}
    done = client.post(
        api + "practice/answers/",
        {"question": question.pk, "answer": "glucose"},
        "application/json",
    )
    assert done.status_code == 201
    body = done.json()
    assert body["correct"] is True and body["mastery"]["attempts"] == 1
    assert body["mastery"]["band"] == "unknown" and body["next_review"]
    assert client.get(api + "reviews/due/").json() == []


def test_the_api_says_when_nothing_is_left_to_practise(client, student, course):
    client.force_login(student)
    assert client.get(f"/api/courses/{course.pk}/practice/next/").status_code == 204


@pytest.mark.django_db(transaction=True)
def test_a_worker_refits_every_course_with_evidence(
    celery_worker, student, other_student, course, make_concept
):
    import time

    from learning.evidence import MIN_RESPONSES_TO_FIT
    from learning.models import CourseMasteryModel
    from learning.tasks import mastery_fit_all_courses

    concept = make_concept("Photosynthesis")
    MasteryEvidence.objects.bulk_create(
        MasteryEvidence(
            learner=student if i % 2 else other_student,
            concept=concept,
            correct=i % 3 != 0,
            source="practice",
        )
        for i in range(MIN_RESPONSES_TO_FIT)
    )
    assert mastery_fit_all_courses() == 1  # enqueues one fit per course with evidence
    deadline = time.monotonic() + 60
    while not CourseMasteryModel.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    fitted = CourseMasteryModel.objects.get(course=course)
    assert fitted.responses == MIN_RESPONSES_TO_FIT
    assert ConceptMastery.objects.filter(concept=concept).count() == 2


def test_a_cloze_whose_blank_is_the_concept_never_shows_the_concept_name(
    client, student, course, make_concept
):
    concept = make_concept("Anaerobic respiration")
    question = PracticeQuestion.objects.create(
        concept=concept,
        kind=PracticeQuestion.Kind.CLOZE,
        prompt="_____ yields only about 2 ATP per glucose.",
        answers=["Anaerobic respiration"],
        explanation="Anaerobic respiration yields only about 2 ATP per glucose.",
        origin=PracticeQuestion.Origin.MATERIAL,
        status=PracticeQuestion.Status.APPROVED,
    )
    assert question.names_its_answer
    client.force_login(student)
    page = client.get(f"/courses/{course.pk}/practice/?question={question.pk}").content.decode()
    assert "_____ yields only about 2 ATP" in page
    assert "anaerobic respiration" not in page.casefold()
    client.post(f"/courses/{course.pk}/practice/answer/", {"question": question.pk, "answer": "x"})
    page = client.get(f"/courses/{course.pk}/practice/").content.decode()
    assert "_____ yields" in page
    assert "anaerobic respiration" not in page.casefold()
    # The progress page names the concept in its mastery table, never beside the question.
    page = client.get(f"/courses/{course.pk}/progress/").content.decode()
    reviews = page[page.index('id="reviews-heading"') :]
    reviews = reviews[: reviews.index("</section>")]
    assert "_____ yields" in reviews
    assert "anaerobic respiration" not in reviews.casefold()


def test_a_cloze_blanks_every_mention_of_its_answer(make_concept):
    concept = make_concept("Cells")
    text = (
        "Mitochondria release energy from glucose, and mitochondria have their own DNA. "
        "Cells need energy to live and grow every day."
    )
    drafts = questions_draft_offline(concept=concept, texts=[text])
    for draft in drafts:
        if draft.kind == PracticeQuestion.Kind.CLOZE:
            for answer in draft.answers:
                assert answer.casefold() not in draft.prompt.casefold(), draft.prompt
