from __future__ import annotations

import json

import pytest

from learning.evidence import mastery_evidence_record
from learning.progress import progress_class

pytestmark = pytest.mark.django_db


def _answers(learner, concept, pattern: str) -> None:
    for mark in pattern:
        mastery_evidence_record(
            learner=learner, concept=concept, correct=mark == "1", source="tutor"
        )


@pytest.fixture
def class_with_data(course, student, make_user, enrol, make_concept):
    strong = make_user("strong", display_name="Strong Sally")
    quiet = make_user("quiet", display_name="Quiet Quinn")
    for user in (strong, quiet):
        enrol(user, course, "student")
    easy, hard = make_concept("Easy"), make_concept("Hard")
    _answers(strong, easy, "111111")
    _answers(strong, hard, "1101")
    _answers(student, easy, "1010")
    _answers(student, hard, "000")
    return {"strong": strong, "quiet": quiet, "easy": easy, "hard": hard}


def test_a_student_sees_mastery_with_words_and_a_table(client, student, course, class_with_data):
    client.force_login(student)
    html = client.get(f"/courses/{course.pk}/progress/").content.decode()
    assert "Mastery per concept (table)" in html
    assert "Needs work" in html  # the Hard concept, in words, not colour alone
    assert 'role="img"' in html and "chart.umd.min.js" in html
    data = json.loads(html.split('id="progress-data" type="application/json">')[1].split("<")[0])
    assert data["mastery"]["labels"] == ["Easy", "Hard"]
    assert data["activity"]["answers"][-1] == 7  # today's answers


def test_no_evidence_shows_not_enough_data(client, student, course, make_concept):
    make_concept("Photosynthesis")
    client.force_login(student)
    html = client.get(f"/courses/{course.pk}/progress/").content.decode()
    assert "Not enough data" in html
    assert "No answers in the last 30 days." in html


def test_the_class_view_puts_struggling_students_first_and_names_the_hardest_concept(
    course, student, class_with_data
):
    progress = progress_class(course=course)
    order = [row.student for row in progress.students]
    assert order == [student, class_with_data["strong"], class_with_data["quiet"]]
    assert progress.hardest[0].concept == class_with_data["hard"]
    assert progress.hardest[0].struggling == 1
    quiet_row = progress.students[-1]
    assert all(cell.label == "Not enough data" for cell in quiet_row.cells)


def test_the_heat_map_is_a_table_with_values_shown(client, teacher, course, class_with_data):
    client.force_login(teacher)
    html = client.get(f"/courses/{course.pk}/progress/class/").content.decode()
    assert '<table class="heatmap">' in html
    assert '<th scope="col">Hard</th>' in html
    assert "Mastered" in html and "Needs work" in html and "%" in html
    assert f"/courses/{course.pk}/progress/students/{class_with_data['strong'].pk}/" in html


def test_a_teacher_drills_down_to_one_student(client, teacher, course, student, class_with_data):
    client.force_login(teacher)
    html = client.get(f"/courses/{course.pk}/progress/students/{student.pk}/").content.decode()
    assert "Progress of Sam Student" in html
    assert "Needs work" in html


def test_a_drill_down_to_someone_outside_the_course_is_not_found(
    client, teacher, course, other_student
):
    client.force_login(teacher)
    response = client.get(f"/courses/{course.pk}/progress/students/{other_student.pk}/")
    assert response.status_code == 404


def test_students_cannot_see_the_class_view(client, student, course):
    client.force_login(student)
    assert client.get(f"/courses/{course.pk}/progress/class/").status_code == 404


def test_the_class_view_query_count_does_not_grow_with_the_class(
    client, teacher, course, make_user, enrol, make_concept, django_assert_num_queries
):
    concepts = [make_concept(f"Concept {i}") for i in range(3)]

    def add_students(n: int) -> None:
        for _ in range(n):
            user = make_user()
            enrol(user, course, "student")
            for concept in concepts:
                _answers(user, concept, "101")

    add_students(2)
    client.force_login(teacher)
    # session, user, course with the role, concepts, students, estimates, display preferences
    with django_assert_num_queries(7):
        client.get(f"/courses/{course.pk}/progress/class/")
    add_students(5)
    with django_assert_num_queries(7):
        client.get(f"/courses/{course.pk}/progress/class/")


def test_the_student_progress_query_count_is_pinned(
    client, student, course, make_concept, make_question, django_assert_num_queries
):
    from learning.practice import practice_answer

    for i in range(4):
        concept = make_concept(f"Concept {i}")
        practice_answer(learner=student, question=make_question(concept), answer="glucose")
    client.force_login(student)
    client.get(f"/courses/{course.pk}/progress/")  # the course's concepts are now cached
    # session, user, course with the role (teacher link), estimates, activity, due,
    # upcoming, display preferences
    with django_assert_num_queries(8):
        client.get(f"/courses/{course.pk}/progress/")


def test_the_practice_page_query_count_is_pinned(
    client, student, course, make_concept, make_question, django_assert_num_queries
):
    for i in range(4):
        make_question(make_concept(f"Concept {i}"))
    client.force_login(student)
    client.get(f"/courses/{course.pk}/practice/")  # the course's concepts are now cached
    # session, user, course, estimates, questions, due, preferences
    with django_assert_num_queries(7):
        client.get(f"/courses/{course.pk}/practice/")


def test_the_tutor_gets_the_concepts_that_need_work_weakest_first(
    course, student, class_with_data, make_concept
):
    from learning.progress import progress_concepts, weakest_concepts

    make_concept("Untouched")
    weakest = weakest_concepts(learner=student, course=course)
    assert weakest[0].concept.name == "Hard"
    assert weakest[0].estimate.band == "needs-work"
    # the one definition: what the progress page labels "needs work", weakest first
    needs_work = sorted(
        (
            p
            for p in progress_concepts(learner=student, course=course)
            if p.estimate.band == "needs-work"
        ),
        key=lambda p: p.estimate.probability,
    )
    assert [p.concept.name for p in weakest] == [p.concept.name for p in needs_work]


def test_the_export_holds_everything_the_learner_model_knows(
    student, other_student, make_concept, make_question
):
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    from learners.profiles import profile_update
    from learning.practice import practice_answer
    from learning.progress import learning_export

    profile_update(user=student, preferred_language="es", goals="Aprobar")
    question = make_question(make_concept("Photosynthesis"))
    practice_answer(learner=student, question=question, answer="glucose")
    practice_answer(learner=other_student, question=question, answer="no")
    data = learning_export(user=student)
    assert data["profile"]["goals"] == "Aprobar" and data["profile"]["preferred_language"] == "es"
    assert [a["answer"] for a in data["practice_answers"]] == ["glucose"]
    assert len(data["evidence"]) == 1 and len(data["reviews"]) == 1 and len(data["mastery"]) == 1
    json.dumps(data, cls=DjangoJSONEncoder)
    student.delete()
    assert learning_export(user=other_student)["practice_answers"][0]["answer"] == "no"


def test_the_api_gives_a_learner_their_mastery_and_a_teacher_the_class(
    client, student, teacher, course, class_with_data
):
    client.force_login(student)
    mine = client.get(f"/api/courses/{course.pk}/mastery/").json()
    assert [row["concept"] for row in mine] == ["Easy", "Hard"]
    easy, hard = (row["estimate"] for row in mine)
    assert easy["enough_data"] and hard["band"] == "needs-work"
    assert hard["probability"] < easy["probability"]
    assert client.get(f"/api/courses/{course.pk}/progress/class/").status_code == 404
    client.force_login(teacher)
    data = client.get(f"/api/courses/{course.pk}/progress/class/").json()
    assert data["concepts"] == ["Easy", "Hard"]
    assert data["students"][0]["student"] == "Sam Student"
    assert data["students"][-1]["average"]["band"] == "unknown"


def test_the_chart_has_no_value_where_the_table_says_not_enough_data(
    client, student, course, make_concept
):
    once = make_concept("Answered once")
    _answers(student, once, "1")
    client.force_login(student)
    html = client.get(f"/courses/{course.pk}/progress/").content.decode()
    data = json.loads(html.split('id="progress-data" type="application/json">')[1].split("<")[0])
    assert data["mastery"]["labels"] == ["Answered once"]
    assert data["mastery"]["notes"] == ["Not enough data"]
    assert data["mastery"]["values"] == [None]


def test_the_heat_map_has_columns_only_for_concepts_with_data(
    client, teacher, course, class_with_data, make_concept
):
    make_concept("Nobody practised this")
    client.force_login(teacher)
    html = client.get(f"/courses/{course.pk}/progress/class/").content.decode()
    table = html[html.index('<table class="heatmap">') : html.index("</table>")]
    assert '<th scope="col">Hard</th>' in table and '<th scope="col">Easy</th>' in table
    assert "Nobody practised this" not in table
    assert "so they have no column" in html or "so it has no column" in html
    assert "Nobody practised this" in html[html.index("</table>") :]
    # The API still lists every concept.
    api = client.get(f"/api/courses/{course.pk}/progress/class/").json()
    assert "Nobody practised this" in api["concepts"]
