"""Grading pages and API: who sees what, forms, htmx partials, query counts."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from grading import reviews, rubrics, submissions, tasks, training
from grading.models import Assignment, CriterionScore, Proposal, Review
from learners.models import AuditEvent
from tests.grading.workflow_factories import ESSAY, RUBRIC, confirm_graded_essays, grade_reply

pytestmark = pytest.mark.django_db


def _url(name, assignment, *args):
    return reverse(f"grading:{name}", args=[assignment.course_id, assignment.pk, *args])


@pytest.fixture
def graded(llm_server, student, assignment, submit):
    """The student's essay with a finished LLM proposal."""
    llm_server.script(json_reply=grade_reply(assignment))
    submission = submit(student, ESSAY + "\n<script>alert('x')</script>")
    tasks.proposal_llm.apply(args=[Proposal.objects.get(submission=submission).pk])
    return submission


def _release(submission, teacher):
    proposal = submission.proposals.get()
    for criterion in submission.assignment.criteria.all():
        reviews.criterion_score_set(
            submission=submission,
            criterion=criterion,
            score=proposal.for_criterion(criterion.pk)["score"],
            actor=teacher,
        )
    reviews.review_release(review=submission.review, actor=teacher)


# --- creating assignments -------------------------------------------------------------


def _assignment_post(**extra):
    data = {
        "title": "Energy essay",
        "prompt": "Explain energy flow.",
        "resubmission_policy": "until_due",
        "criteria-TOTAL_FORMS": "2",
        "criteria-INITIAL_FORMS": "0",
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "30",
        "criteria-0-name": "Argument",
        "criteria-0-min": "0",
        "criteria-0-max": "4",
        "criteria-0-step": "1",
        "criteria-0-levels": "0: none\n4: strong",
        "criteria-1-name": "",
    }
    data.update(extra)
    return data


def test_a_teacher_creates_an_assignment_with_a_rubric(client, teacher, course):
    client.force_login(teacher)
    response = client.post(reverse("grading:assignment-new", args=[course.pk]), _assignment_post())
    assignment = Assignment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _url("assignment", assignment)
    (criterion,) = assignment.criteria.all()
    assert criterion.name == "Argument" and criterion.level_descriptors == {
        "0": "none",
        "4": "strong",
    }


def test_a_rubric_with_no_criteria_is_refused_with_a_message(client, teacher, course):
    client.force_login(teacher)
    response = client.post(
        reverse("grading:assignment-new", args=[course.pk]),
        _assignment_post(**{"criteria-0-name": ""}),
    )
    assert response.status_code == 422
    assert "no criteria" in response.content.decode()
    assert not Assignment.objects.exists()


def test_a_rubric_with_negative_points_is_refused(client, teacher, course):
    client.force_login(teacher)
    response = client.post(
        reverse("grading:assignment-new", args=[course.pk]),
        _assignment_post(**{"criteria-0-min": "-1"}),
    )
    assert response.status_code == 422
    assert "cannot be negative" in response.content.decode()


def test_a_rubric_json_is_imported_and_exported(client, teacher, course):
    client.force_login(teacher)
    client.post(
        reverse("grading:assignment-new", args=[course.pk]),
        _assignment_post(rubric_json=json.dumps(RUBRIC)),
    )
    assignment = Assignment.objects.get()
    assert [c.name for c in assignment.criteria.all()] == ["Argument", "Conventions"]
    exported = client.get(_url("rubric-export", assignment))
    assert exported["Content-Type"].startswith("application/json")
    assert json.loads(exported.content)["criteria"][1]["step"] == 0.5


def test_students_cannot_create_assignments(client, student, course):
    client.force_login(student)
    assert client.get(reverse("grading:assignment-new", args=[course.pk])).status_code == 404


# --- submitting -------------------------------------------------------------------------


def test_a_student_submits_text_and_sees_the_word_count(client, student, assignment):
    client.force_login(student)
    response = client.post(_url("submit", assignment), {"text": "One two three four."})
    assert response.status_code == 302
    page = client.get(_url("assignment", assignment)).content.decode()
    assert "4 words" in page
    assert "not released the grade yet" in page


def test_an_empty_essay_gets_a_clear_message(client, student, assignment):
    client.force_login(student)
    response = client.post(_url("submit", assignment), {"text": "   "})
    assert response.status_code == 422
    assert "The essay is empty." in response.content.decode()


def test_a_non_utf8_upload_gets_a_clear_message(client, student, assignment):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(student)
    upload = SimpleUploadedFile("essay.txt", "Öl und Wärme".encode("latin-1"))
    response = client.post(_url("submit", assignment), {"text": "", "upload": upload})
    assert response.status_code == 422
    assert "not UTF-8" in response.content.decode()


def test_a_docx_upload_is_parsed_into_the_essay(client, student, assignment):
    import io

    import docx
    from django.core.files.uploadedfile import SimpleUploadedFile

    document = docx.Document()
    document.add_paragraph("Plants turn light into sugar.")
    document.add_paragraph("They release oxygen.")
    buffer = io.BytesIO()
    document.save(buffer)
    client.force_login(student)
    upload = SimpleUploadedFile("essay.docx", buffer.getvalue())
    response = client.post(_url("submit", assignment), {"text": "", "upload": upload})
    assert response.status_code == 302
    submission = assignment.submissions.get()
    assert "Plants turn light into sugar." in submission.text
    assert "They release oxygen." in submission.text


# --- what each person sees ---------------------------------------------------------------


def test_the_student_reads_released_feedback_and_no_one_else_does(
    client, graded, teacher, student, make_user, enrol, course, assignment
):
    page = _url("assignment", assignment)
    client.force_login(student)
    assert "Your grade" not in client.get(page).content.decode()
    _release(graded, teacher)
    html = client.get(page).content.decode()
    assert "Your grade" in html and "4.5 / 6" in html
    assert "light energy into chemical energy" in html
    assert "Add an example from an experiment." in html

    classmate = make_user("classmate")
    enrol(classmate, course, "student")
    client.force_login(classmate)
    html = client.get(page).content.decode()
    assert "Your grade" not in html and "Rationale for" not in html
    api = client.get(_url("api-grade", assignment))
    assert api.status_code == 404


def test_a_teacher_of_another_course_gets_404_everywhere(client, graded, other_teacher, assignment):
    client.force_login(other_teacher)
    for url in (
        _url("assignment", assignment),
        _url("review", assignment),
        _url("review-essay", assignment, graded.pk),
        _url("agreement", assignment),
        _url("api-review-queue", assignment),
    ):
        assert client.get(url).status_code == 404, url


def test_a_student_cannot_open_the_review_pages(client, graded, student, assignment):
    client.force_login(student)
    assert client.get(_url("review", assignment)).status_code == 404
    assert client.get(_url("review-essay", assignment, graded.pk)).status_code == 404
    criterion = assignment.criteria.first()
    response = client.post(
        _url("criterion-decide", assignment, graded.pk, criterion.pk), {f"c{criterion.pk}-score": 4}
    )
    assert response.status_code == 404
    assert not CriterionScore.objects.exists()


# --- review -----------------------------------------------------------------------------


def test_the_essay_is_escaped_and_verified_quotes_are_marked(client, graded, teacher, assignment):
    client.force_login(teacher)
    html = client.get(_url("review-essay", assignment, graded.pk)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<mark>light energy into chemical energy</mark>" in html


def test_essay_highlight_merges_overlapping_quotes():
    from grading.views import essay_highlight

    html = essay_highlight("a <b> c d e", ["<b> c", "c d", "zzz"])
    assert html == "a <mark>&lt;b&gt; c d</mark> e"


def test_an_htmx_override_without_a_reason_is_refused_in_place(client, graded, teacher, assignment):
    client.force_login(teacher)
    criterion = assignment.criteria.get(name="Argument")
    url = _url("criterion-decide", assignment, graded.pk, criterion.pk)
    prefix = f"c{criterion.pk}"
    response = client.post(
        url, {f"{prefix}-score": "1", f"{prefix}-comment": "x"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert "Give a reason" in response.content.decode()
    assert "<html" not in response.content.decode()
    response = client.post(
        url,
        {f"{prefix}-score": "1", f"{prefix}-comment": "x", f"{prefix}-reason": "Too thin"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="criterion-{criterion.pk}"' in html
    assert 'hx-swap-oob="true"' in html  # the release box follows the change
    assert CriterionScore.objects.get(criterion=criterion).score == 1


def test_one_click_approve_keeps_the_comment_and_redirects_without_htmx(
    client, graded, teacher, assignment
):
    client.force_login(teacher)
    criterion = assignment.criteria.get(name="Argument")
    response = client.post(
        _url("criterion-decide", assignment, graded.pk, criterion.pk),
        {f"c{criterion.pk}-score": "3"},
    )
    assert response.status_code == 302
    assert CriterionScore.objects.get(criterion=criterion).score == 3
    assert str(criterion.pk) not in Review.objects.get(submission=graded).comments


def test_bulk_approve_and_release_from_the_queue(client, graded, teacher, assignment, student):
    client.force_login(teacher)
    response = client.post(_url("bulk-approve", assignment), {"min_confidence": "0.8"})
    assert response.status_code == 302
    assert Review.objects.get(submission=graded).status == Review.Status.CONFIRMED
    client.post(_url("release-all", assignment))
    assert Review.objects.get(submission=graded).status == Review.Status.RELEASED
    client.force_login(student)
    assert "Your grade" in client.get(_url("assignment", assignment)).content.decode()


def test_the_review_page_says_how_far_the_learned_scorer_is(
    client, teacher, assignment, make_user, enrol, course
):
    client.force_login(teacher)
    url = _url("review", assignment)
    confirm_graded_essays(assignment, make_user, enrol, course, count=4)
    assert "once you have confirmed 10 essays (4 so far)" in client.get(url).content.decode()

    confirm_graded_essays(assignment, make_user, enrol, course, count=8, first=4)
    assert "training on your 12 confirmed essays" in client.get(url).content.decode()

    training.scorer_train(assignment_id=assignment.pk)
    assert "Learned scorer: trained on 12 confirmed essays" in client.get(url).content.decode()

    assignment.criteria.filter(name="Argument").update(max_score=5)  # the rubric changed
    assert "training on your 12 confirmed essays" in client.get(url).content.decode()


def test_the_queue_page_uses_a_fixed_number_of_queries(
    client, teacher, assignment, make_user, enrol, course, django_assert_num_queries, llm_server
):
    llm_server.script(json_reply=grade_reply(assignment))

    def add(count):
        for _ in range(count):
            learner = make_user()
            enrol(learner, course, "student")
            submission = submissions.submission_submit(
                assignment=assignment, learner=learner, text=ESSAY
            )
            tasks.proposal_llm.apply(args=[submission.proposals.get().pk])

    client.force_login(teacher)
    add(2)
    url = _url("review", assignment)
    # ... plus one for the learner's display preferences (the base template's body classes)
    # and two for the learned scorer's status, and one for the learners' earlier versions
    with django_assert_num_queries(14):
        assert client.get(url).status_code == 200
    add(5)
    with django_assert_num_queries(14):
        html = client.get(url).content.decode()
    assert html.count('class="grading-queue"') >= 1
    partial = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="review-queue"')
    assert 'hx-trigger="every 10s"' not in partial  # nothing is being graded any more
    Proposal.objects.filter(pk=Proposal.objects.first().pk).update(status="queued")
    assert 'hx-trigger="every 10s"' in client.get(url, HTTP_HX_REQUEST="true").content.decode()


def test_the_agreement_dashboard_shows_metrics_per_criterion(client, graded, teacher, assignment):
    _release(graded, teacher)
    client.force_login(teacher)
    html = client.get(_url("agreement", assignment)).content.decode()
    assert "QWK" in html and "Argument" in html and "1.00" in html
    data = client.get(_url("api-agreement", assignment)).json()
    llm_rows = [r for r in data["rows"] if r["source"] == "Language model"]
    assert [r["exact"] for r in llm_rows] == [1.0, 1.0]
    assert not data["has_group_data"]


def test_agreement_report_uses_group_data_when_given(assignment, make_user, enrol, course, teacher):
    from grading.selectors import agreement_report

    argument, conventions = assignment.criteria.all()
    groups = {}
    for index in range(60):
        learner = make_user()
        enrol(learner, course, "student")
        submission = submissions.submission_submit(
            assignment=assignment, learner=learner, text=ESSAY
        )
        human = index % 5
        Proposal.objects.create(
            submission=submission,
            rubric_version="v",
            source="llm",
            status="done",
            criteria={
                str(argument.pk): {"score": min(human + index % 2, 4), "confidence": 0.9},
                str(conventions.pk): {"score": 1, "confidence": 0.9},
            },
        )
        CriterionScore.objects.create(submission=submission, criterion=argument, score=human)
        CriterionScore.objects.create(submission=submission, criterion=conventions, score=1)
        groups[learner.pk] = {"language": "first" if index % 2 else "second"}
    report = agreement_report(assignment=assignment, learner_groups=groups)
    (row,) = [r for r in report.rows if r.name == "Argument" and r.source == "Language model"]
    assert row.n == 60 and 0 < row.exact < 1 and row.adjacent == 1.0
    # Only the "first" group is over-scored by the model, and it is too small to report.
    assert report.groups == []
    report = agreement_report(assignment=assignment, learner_groups=groups | {})
    assert report.has_group_data


# --- API --------------------------------------------------------------------------------


def test_the_api_submits_queues_decides_and_shows_the_grade(
    client, llm_server, student, teacher, assignment, django_capture_on_commit_callbacks
):
    llm_server.script(json_reply=grade_reply(assignment))
    client.force_login(student)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            _url("api-submit", assignment), {"text": ESSAY}, content_type="application/json"
        )
    assert response.status_code == 201, response.content
    assert response.json()["word_count"] == len(ESSAY.split())
    assert len(callbacks) == 1
    submission_id = response.json()["id"]
    tasks.proposal_llm.apply(args=[Proposal.objects.get(submission_id=submission_id).pk])

    client.force_login(teacher)
    queue = client.get(_url("api-review-queue", assignment)).json()
    assert [item["submission_id"] for item in queue] == [submission_id]
    assert queue[0]["proposals"][0]["source"] == "llm"
    for criterion in assignment.criteria.all():
        decided = client.post(
            _url("api-criterion-decide", assignment, submission_id, criterion.pk),
            {"score": "2" if criterion.name == "Argument" else "1.5", "reason": "Thin support"},
            content_type="application/json",
        )
        assert decided.status_code == 200, decided.content
    assert decided.json()["review_status"] == "confirmed"
    refused = client.post(
        _url("api-criterion-decide", assignment, submission_id, criterion.pk),
        {"score": "7", "reason": "x"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    reviews.review_release(review=Review.objects.get(submission_id=submission_id), actor=teacher)
    client.force_login(student)
    grade = client.get(_url("api-grade", assignment)).json()
    assert grade["status"] == "released" and grade["total"] == "3.5"


def test_the_review_page_shows_the_history_of_grade_changes(client, graded, teacher, assignment):
    criterion = assignment.criteria.get(name="Argument")
    reviews.criterion_score_set(
        submission=graded, criterion=criterion, score=2, reason="Weak evidence", actor=teacher
    )
    client.force_login(teacher)
    html = client.get(_url("review-essay", assignment, graded.pk)).content.decode()
    assert "History of grade changes" in html
    assert "Argument: the AI proposed 3; Ms. Tanaka set 2: “Weak evidence”" in html
    assert "→" not in html


def test_the_assignment_list_uses_a_fixed_number_of_queries(
    client, teacher, course, django_assert_num_queries
):
    client.force_login(teacher)
    url = reverse("grading:assignments", args=[course.pk])
    rubrics.assignment_create(course=course, title="First", rubric=RUBRIC)
    with django_assert_num_queries(5):  # including the display preferences
        assert client.get(url).status_code == 200
    for index in range(4):
        rubrics.assignment_create(course=course, title=f"More {index}", rubric=RUBRIC)
    with django_assert_num_queries(5):
        html = client.get(url).content.decode()
    assert html.count("/review/") == 5


def test_the_students_assignment_page_asks_for_the_role_once(
    client, student, assignment, django_assert_num_queries
):
    """Session, user, the course with the user's role (no second role query), the
    assignment and its criteria, the current submission, whether one may be sent, the
    versions, and the display preferences."""
    client.force_login(student)
    url = reverse("grading:assignment", args=[assignment.course_id, assignment.pk])
    with django_assert_num_queries(9) as captured:
        assert client.get(url).status_code == 200
    assert not any(q["sql"].startswith('SELECT "learners_membership"') for q in captured)


def test_the_teacher_edits_the_feedback_before_release(
    client, graded, teacher, student, assignment
):
    client.force_login(teacher)
    response = client.post(
        _url("feedback", assignment, graded.pk),
        {"strengths": "Clear thesis.\n\n", "next_steps": "Cite the experiment.\nCheck spelling."},
    )
    assert response.status_code == 302
    _release(graded, teacher)
    released = Review.objects.get(submission=graded).released
    assert released["strengths"] == ["Clear thesis."]
    assert released["next_steps"] == ["Cite the experiment.", "Check spelling."]
    event = AuditEvent.objects.get(details__decision="feedback")
    assert event.before["feedback"]["strengths"] == ["You explain the energy change clearly."]
    client.force_login(student)
    html = client.get(_url("assignment", assignment)).content.decode()
    assert "Cite the experiment." in html and "You explain the energy change" not in html
