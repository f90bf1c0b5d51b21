from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from learners.models import Concept
from learning.evidence import mastery_evidence_record
from learning.models import PracticeQuestion, ReviewCard
from tests.learning.learning_fixtures import learning_settings  # noqa: F401

CHART_DRAWN_MS = 30_000  # a deferred 200 kB script, parsed by a busy CPU


def _slow_network(page, latency_ms: int) -> None:
    """Every response arrives ``latency_ms`` late, as from a busy server: the page shows
    before its deferred scripts have run."""
    session = page.context.new_cdp_session(page)
    conditions = {"offline": False, "latency": latency_ms}
    session.send(
        "Network.emulateNetworkConditions",
        {**conditions, "downloadThroughput": -1, "uploadThroughput": -1},
    )


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _csp_violations(page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


@pytest.mark.usefixtures("learning_settings")
def test_a_student_onboards_in_spanish_practises_and_gets_a_review_scheduled(
    page, login, student, course
):
    concept = Concept.objects.create(course=course, name="Fotosíntesis")
    for n in range(3):
        PracticeQuestion.objects.create(
            concept=concept,
            kind=PracticeQuestion.Kind.CLOZE,
            prompt=f"Las plantas guardan energía en forma de _____ ({n + 1}).",
            answers=["glucosa"],
            explanation="La fotosíntesis produce glucosa.",
            origin=PracticeQuestion.Origin.TEACHER,
            status=PracticeQuestion.Status.APPROVED,
        )
    violations = _csp_violations(page)
    login(student)

    page.get_by_role("link", name="Set up my profile").click()
    expect(page.get_by_role("heading", name="Welcome! Tell us about yourself")).to_be_visible()
    page.get_by_label("Language of the pages and the tutor").select_option("es")
    page.get_by_label("What do you want to achieve?").fill("Aprobar biología")
    page.get_by_label("Larger text").check()
    page.get_by_label("Read the tutor's replies aloud").check()
    page.get_by_role("button", name="Save and start").click()

    expect(page.get_by_role("heading", name="Mis cursos")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("body")).to_have_class(re.compile(r"\bpref-larger-text\b"))

    page.get_by_role("link", name=course.title).click()
    page.get_by_role("link", name="Practicar").click()
    expect(page.get_by_role("heading", name="Práctica", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Leer en voz alta")).to_be_visible()

    seen = []
    for attempt in range(3):
        if attempt:
            page.get_by_role("link", name="Siguiente pregunta").click()
        page.get_by_label("Tu respuesta").fill("Glucosa")
        page.get_by_role("button", name="Comprobar mi respuesta").click()
        expect(page.get_by_text("¡Correcto!")).to_be_visible()
        expect(page.get_by_text("La fotosíntesis produce glucosa.")).to_be_visible()
        expect(page.get_by_text("Próximo repaso")).to_be_visible()
        seen.append(page.locator("[data-mastery]").inner_text())

    assert seen[0].startswith("Aún no hay datos suficientes")
    assert re.fullmatch(r"\d+%", seen[-1]) and int(seen[-1][:-1]) > 65  # it moved up
    cards = ReviewCard.objects.filter(learner=student)
    assert cards.count() == 3
    assert all(card.due > card.last_review for card in cards)

    _slow_network(page, latency_ms=1500)
    page.get_by_role("link", name="Mi progreso").click()
    table = page.get_by_role("table").first
    expect(table.get_by_role("rowheader", name="Fotosíntesis")).to_be_visible()
    expect(page.get_by_role("heading", name="Programados")).to_be_visible()
    # The chart is a deferred 200 kB script: wait for what it draws (Chart.js sizes the
    # canvas), not by evaluating a string in the page, which the CSP refuses.
    expect(page.locator("#mastery-chart")).to_have_attribute(
        "height", re.compile(r"\d+"), timeout=CHART_DRAWN_MS
    )
    assert violations == []


def test_a_teacher_sees_the_class_heat_map_and_drills_down(
    page, login, teacher, student, make_user, enrol, course
):
    strong = make_user("strong", display_name="Strong Sally")
    enrol(strong, course, "student")
    easy = Concept.objects.create(course=course, name="Easy idea")
    hard = Concept.objects.create(course=course, name="Hard idea")
    for correct in (True,) * 6:
        mastery_evidence_record(learner=strong, concept=easy, correct=correct, source="practice")
    for correct in (False, False, False):
        mastery_evidence_record(learner=student, concept=hard, correct=correct, source="practice")
    violations = _csp_violations(page)
    login(teacher)
    page.get_by_role("link", name=course.title).click()
    page.get_by_role("link", name="Class progress").click()

    heatmap = page.locator("table.heatmap")
    expect(heatmap.get_by_role("columnheader", name="Hard idea")).to_be_visible()
    rows = heatmap.locator("tbody tr")
    expect(rows.first.get_by_role("rowheader")).to_have_text("Sam Student")  # struggling first
    expect(rows.first).to_contain_text("Needs work")
    expect(rows.nth(1)).to_contain_text("Mastered")
    expect(page.locator("ol.hardest li").first).to_contain_text("Hard idea")

    rows.first.get_by_role("link", name="Sam Student").click()
    expect(page.get_by_role("heading", name="Progress of Sam Student")).to_be_visible()
    assert violations == []
