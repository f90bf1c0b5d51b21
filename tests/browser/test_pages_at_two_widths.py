"""The teacher's and the student's everyday pages in a real browser at desktop width and
at 390 px: no console error (the CSP refuses any inline style), nothing wider than the
screen, and the page's own behaviour (approving a question in place, a chart label for
every bar, a heat map of only the concepts with data, material steps, a tutor page that
names a new conversation without a reload). Screenshots go to var/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from learners.models import Concept
from learning.evidence import mastery_evidence_record
from learning.models import PracticeQuestion
from learning.practice import questions_generate
from tests.browser.test_review_by_keyboard import queue_of_essays  # noqa: F401
from tests.browser_helpers import console_errors, login_through_form
from tests.learning.learning_fixtures import PHOTOSYNTHESIS
from tests.material.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401
from tests.tutor.asgi import asgi_server, asgi_server_session  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("media_root"),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
LONG_NAMES = [
    "Photosynthesis",
    "Cellular respiration",
    "Anaerobic respiration and fermentation",
    "Enzymes",
    "ATP",
    "Chloroplast structure",
    "Mitochondria",
    "Light-dependent reactions",
    "Calvin cycle",
    "Limiting factors of photosynthesis",
    "Glycolysis",
    "Krebs cycle",
]


def _shot(page, name: str, width: int) -> None:
    """A full-page screenshot. (caret="initial": hiding the caret leaves style="" on
    every field, which htmx then trips the CSP on.)"""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True, caret="initial")


def _look(page, name: str, width: int) -> None:
    """A full-page screenshot, and nothing wider than the screen."""
    _shot(page, name, width)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{name} is {overflow} px wide at {width} px"


@pytest.fixture
def concepts(course, student):
    made = [Concept.objects.create(course=course, name=name) for name in LONG_NAMES]
    # Enough data on some, a single answer on one (not enough data), nothing on the rest.
    for concept in made[:4]:
        for correct in (True, True, False, True, True, True):
            mastery_evidence_record(
                learner=student, concept=concept, correct=correct, source="practice"
            )
    mastery_evidence_record(learner=student, concept=made[4], correct=True, source="practice")
    return made


@WIDTHS
def test_a_teacher_approves_edits_and_rejects_generated_questions(
    page, login, live_server, teacher, course, width
):
    concept = Concept.objects.create(course=course, name="Photosynthesis")
    made = questions_generate(concept=concept, texts=[PHOTOSYNTHESIS])
    cloze = next(q for q in made if q.kind == PracticeQuestion.Kind.CLOZE)
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/concepts/")
    expect(page.get_by_text(f"{len(made)} generated questions wait")).to_be_visible()
    page.get_by_role("link", name="Review the questions").click()
    expect(page.get_by_role("heading", name="Questions to approve")).to_be_visible()
    _look(page, "questions", width)

    card = page.locator(f"#question-{cloze.pk}")
    # An edit that shows the answer is refused in place, the typed text kept.
    card.get_by_label(re.compile("^Question")).fill("Photosynthesis: _____ happens in leaves.")
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("alert")).to_contain_text("is in the question itself")
    expect(card.get_by_label(re.compile("^Question"))).to_have_value(
        "Photosynthesis: _____ happens in leaves."
    )
    card.get_by_label(re.compile("^Question")).fill("_____ turns light into chemical energy.")
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_have_text("Question approved.")
    other = page.locator(".question-approval").filter(has_not=page.locator("[role=status]"))
    other.first.get_by_role("button", name="Reject").click()
    expect(page.get_by_text("Question rejected.")).to_be_visible()
    cloze.refresh_from_db()
    assert cloze.status == PracticeQuestion.Status.APPROVED
    assert cloze.prompt == "_____ turns light into chemical energy."
    assert PracticeQuestion.objects.filter(status=PracticeQuestion.Status.REJECTED).count() == 1
    assert errors == []


@WIDTHS
def test_a_student_sees_a_label_for_every_bar_and_no_value_without_data(
    page, login, live_server, student, course, concepts, width
):
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(student)
    page.goto(f"{live_server.url}/courses/{course.pk}/progress/")
    page.wait_for_function("typeof Chart === 'function' && Chart.getChart('mastery-chart')")
    chart = page.evaluate(
        """() => {
          const chart = Chart.getChart('mastery-chart');
          chart.update('none');
          return {
            ticks: chart.scales.y.ticks.length,
            labels: chart.data.labels,
            values: chart.data.datasets[0].data,
          };
        }"""
    )
    assert chart["ticks"] == len(LONG_NAMES)  # no label skipped
    values = dict(zip(chart["labels"], chart["values"], strict=True))
    assert values["ATP"] is None  # "Not enough data" in the table: no bar
    assert all(values[name] is None for name in LONG_NAMES[5:])
    assert all(isinstance(values[name], int) for name in LONG_NAMES[:4])
    row = page.locator(".mastery-table tr", has_text="ATP")
    expect(row).to_contain_text("Not enough data")
    _look(page, "progress", width)
    assert errors == []


@WIDTHS
def test_a_teachers_heat_map_has_only_concepts_with_data(
    page, login, live_server, teacher, course, concepts, width
):
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/progress/class/")
    heatmap = page.locator("table.heatmap")
    expect(heatmap.locator("thead th")).to_have_count(2 + 5)  # student, average, 5 concepts
    expect(page.get_by_text("so they have no column")).to_contain_text("Krebs cycle")
    _look(page, "class-progress", width)
    assert errors == []


@WIDTHS
def test_the_review_queue_fits_the_screen(
    page,
    login,
    live_server,
    teacher,
    course,
    queue_of_essays,  # noqa: F811
    width,
):
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/assignments/{queue_of_essays.pk}/review/")
    expect(page.locator(".grading-queue")).to_be_visible()
    _look(page, "review-queue", width)
    assert errors == []


@WIDTHS
def test_the_material_list_shows_steps_and_offers_only_what_helps(
    page, login, live_server, teacher, course, width
):
    from material.models import Material
    from material.services import material_ingest, material_upload
    from tests.material.material_files import pdf_bytes

    ready = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="cells.md"))
    material_ingest(material_id=ready.pk)
    scan = material_upload(course=course, file=ContentFile(pdf_bytes([""]), name="scan.pdf"))
    material_ingest(material_id=scan.pk)
    busy = material_upload(course=course, file=ContentFile(VOLCANO.encode(), name="volcano.md"))
    Material.objects.filter(pk=busy.pk).update(
        status=Material.Status.PROCESSING,
        step=Material.Step.EMBEDDING,
        passages_done=320,
        passages_total=1234,
    )
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/materials/")
    expect(page.get_by_text("Embedding passages: 320 of 1234")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Process again"))).to_have_count(0)
    _look(page, "materials", width)
    Material.objects.filter(pk=busy.pk).update(status=Material.Status.READY, step="")

    row = page.locator(f"#material-{ready.pk}")
    row.get_by_text("Rename").click()
    row.get_by_label("Title").fill("Energy in cells")
    row.get_by_role("button", name="Save the title").click()
    expect(page.get_by_role("link", name="Energy in cells")).to_be_visible()
    assert errors == []


@WIDTHS
def test_a_new_conversation_takes_its_title_and_loses_its_hint_without_a_reload(
    page,
    asgi_server,  # noqa: F811
    student,
    course,
    settings,
    width,
):
    from tutor.models import Conversation, Message

    settings.LLM_BASE_URL = ""
    # An earlier reply with an aligned table: its alignment must not be an inline style.
    earlier = Conversation.objects.create(course=course, learner=student, title="Tables")
    Message.objects.create(conversation=earlier, role="user", text="A table, please")
    Message.objects.create(
        conversation=earlier,
        role="assistant",
        status=Message.Status.DONE,
        text="| Organelle | Energy |\n|:--|--:|\n| Mitochondrion | ATP |",
    )
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login_through_form(page, asgi_server.url, student)
    page.goto(f"{asgi_server.url}/courses/{course.pk}/tutor/conversations/{earlier.pk}/")
    expect(page.locator(".tutor-markdown td.align-right")).to_have_text("ATP")

    page.get_by_role("button", name="New conversation").click()
    current = page.locator(".tutor-conversations a[aria-current=page]")
    expect(current).to_have_text(re.compile(r"^Conversation \d+$"))
    hint = page.locator("#tutor-empty-hint")
    expect(hint).to_be_visible()
    _look(page, "tutor-new", width)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.get_by_label("Your message").fill("Where does photosynthesis happen?")
    page.get_by_role("button", name="Send").click()
    expect(current).to_have_text("Where does photosynthesis happen?")
    expect(hint).to_be_hidden()
    assert navigations == []
    _look(page, "tutor-sent", width)
    assert errors == []


@WIDTHS
def test_no_page_trips_the_csp_or_spills_sideways(
    page,
    width,
    asgi_server,  # noqa: F811
    teacher,
    student,
    course,
    concepts,
    queue_of_essays,  # noqa: F811
    settings,
):
    """Every HTML page a student or a teacher opens, each loaded in a real browser with
    the strict CSP: not one console error (an inline style or script would be one), and
    none wider than the screen."""
    from grading import submissions
    from material.services import material_ingest, material_upload
    from tutor.models import Conversation, Message

    settings.LLM_BASE_URL = ""
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    material_ingest(material_id=material.pk)
    questions_generate(concept=concepts[0], texts=[PHOTOSYNTHESIS])
    PracticeQuestion.objects.update(status=PracticeQuestion.Status.APPROVED)
    questions_generate(concept=concepts[1], texts=[PHOTOSYNTHESIS])
    submissions.submission_submit(assignment=queue_of_essays, learner=student, text=MARKDOWN)
    chat = Conversation.objects.create(course=course, learner=student, title="Tables")
    Message.objects.create(conversation=chat, role="user", text="A table, please")
    Message.objects.create(
        conversation=chat,
        role="assistant",
        status=Message.Status.DONE,
        text="| Organelle | Energy |\n|:--|--:|\n| Mitochondrion | ATP |",
    )
    essay = queue_of_essays.submissions.order_by("pk").first()
    c, a = f"/courses/{course.pk}", f"/courses/{course.pk}/assignments/{queue_of_essays.pk}"
    pages = {
        student: [
            "/",
            f"{c}/",
            f"{c}/practice/",
            f"{c}/progress/",
            f"{c}/tutor/",
            f"{c}/tutor/conversations/{chat.pk}/",
            f"{c}/tutor/memories/",
            f"{c}/materials/{material.pk}/",
            f"{c}/search/?q=chlorophyll",
            f"{c}/assignments/",
            f"{a}/",
            "/profile/",
            "/privacy/",
            "/consent/",
        ],
        teacher: [
            "/",
            f"{c}/",
            f"{c}/concepts/",
            f"{c}/questions/",
            f"{c}/progress/class/",
            f"{c}/progress/students/{student.pk}/",
            f"{c}/materials/",
            f"{c}/assignments/",
            f"{c}/assignments/new/",
            f"{a}/review/",
            f"{a}/review/{essay.pk}/",
            f"{a}/agreement/",
        ],
    }
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    spills = []
    for user, urls in pages.items():
        page.context.clear_cookies()
        login_through_form(page, asgi_server.url, user)
        for url in urls:
            response = page.goto(f"{asgi_server.url}{url}")
            assert response is not None and response.status == 200, url
            page.wait_for_load_state("networkidle")
            assert errors == [], f"{url}: {errors}"
            name = re.sub(r"\W+", "-", url.split("?")[0]).strip("-") or "home"
            _shot(page, f"{user.username}-{name}", width)
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                spills.append(f"{url} ({wide} px)")
    assert spills == []
