from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from learners.models import Concept
from learning.concepts import (
    ConceptCycleError,
    concept_save,
    concept_suggestions,
    concepts_accept,
    material_sections,
    section_headings,
)
from learning.models import PracticeQuestion
from material.models import Chunk, Material
from tests.learning.learning_fixtures import PHOTOSYNTHESIS

pytestmark = pytest.mark.django_db


def test_a_teacher_defines_a_concept_with_prerequisites(client, teacher, course, make_concept):
    light = make_concept("Light")
    client.force_login(teacher)
    response = client.post(
        f"/courses/{course.pk}/concepts/save/",
        {
            "name": "  Photosynthesis ",
            "description": "Plants make food",
            "prerequisites": [light.pk],
        },
    )
    assert response.status_code == 302
    concept = Concept.objects.get(course=course, name="Photosynthesis")
    assert list(concept.prerequisites.all()) == [light]
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert "Photosynthesis" in page and "Light" in page


def test_a_prerequisite_cycle_is_refused_with_the_cycle_named(course, make_concept):
    a = make_concept("Atoms")
    b = make_concept("Bonds", prerequisites=[a])
    c = make_concept("Chemistry", prerequisites=[b])
    with pytest.raises(ConceptCycleError) as error:
        concept_save(course=course, name="Atoms", prerequisites=[c], concept=a)
    assert error.value.cycle == ["Atoms", "Chemistry", "Bonds", "Atoms"]
    assert "Atoms → Chemistry → Bonds → Atoms" in error.value.messages[0]
    assert list(a.prerequisites.all()) == []  # nothing was saved


def test_the_cycle_error_reaches_the_teacher(client, teacher, course, make_concept):
    a = make_concept("Atoms")
    b = make_concept("Bonds", prerequisites=[a])
    client.force_login(teacher)
    response = client.post(
        f"/courses/{course.pk}/concepts/save/",
        {"concept": a.pk, "name": "Atoms", "prerequisites": [b.pk]},
    )
    assert response.status_code == 400
    assert "Atoms → Bonds → Atoms" in response.content.decode()


def test_a_concept_cannot_require_itself_or_share_a_name(course, make_concept):
    a = make_concept("Atoms")
    with pytest.raises(ConceptCycleError):
        concept_save(course=course, name="Atoms", prerequisites=[a], concept=a)
    with pytest.raises(ValidationError):
        concept_save(course=course, name="atoms")
    with pytest.raises(ValidationError):
        concept_save(course=course, name="   ")


def test_prerequisites_must_belong_to_the_same_course(course, other_course, make_concept):
    foreign = make_concept("Foreign", course=other_course)
    with pytest.raises(ValidationError):
        concept_save(course=course, name="Local", prerequisites=[foreign])


def test_suggestions_come_from_headings_without_structure_or_duplicates(course, make_concept):
    make_concept("Cell respiration")
    headings = [
        "1. Introduction",
        "1.1 Photosynthesis",
        "## Cell respiration",
        "2) The Calvin cycle",
        "Photosynthesis",
        "Summary",
        "ab",
        "This heading is really a whole sentence that goes on and on about many things",
    ]
    assert concept_suggestions(course=course, headings=headings) == [
        "Photosynthesis",
        "The Calvin cycle",
    ]


def test_accepting_suggestions_creates_the_chosen_concepts(client, teacher, course):
    client.force_login(teacher)
    suggest = client.post(
        f"/courses/{course.pk}/concepts/suggest/",
        {"headings": "1. Enzymes\n2. Introduction\n3. Metabolism"},
        HTTP_HX_REQUEST="true",
    )
    html = suggest.content.decode()
    assert 'value="Enzymes"' in html and 'value="Metabolism"' in html
    assert "Introduction" not in html
    assert "<html" not in html  # only the partial for htmx
    client.post(f"/courses/{course.pk}/concepts/accept/", {"name": ["Enzymes"]})
    assert list(Concept.objects.filter(course=course).values_list("name", flat=True)) == ["Enzymes"]
    assert concepts_accept(course=course, names=["Enzymes"]) == []


def test_students_cannot_edit_concepts(client, student, course):
    client.force_login(student)
    assert client.get(f"/courses/{course.pk}/concepts/").status_code == 404
    client.post(f"/courses/{course.pk}/concepts/save/", {"name": "Sneaky"})
    assert not Concept.objects.exists()


def test_a_teacher_deletes_a_concept(client, teacher, course, make_concept):
    a = make_concept("Atoms")
    client.force_login(teacher)
    client.post(f"/courses/{course.pk}/concepts/delete/", {"concept": a.pk})
    assert not Concept.objects.exists()


def test_suggestions_and_questions_come_from_the_courses_material(
    client, teacher, course, settings
):
    material = Material.objects.create(
        course=course, title="Plants", original_name="plants.md", status="ready"
    )
    for position, (section, text) in enumerate(
        [
            ("Plants › Photosynthesis", PHOTOSYNTHESIS),
            ("Plants › Photosynthesis", "Plants need water."),
            ("Plants › Summary", "Plants are living things."),
        ]
    ):
        Chunk.objects.create(
            material=material,
            course=course,
            position=position,
            section=section,
            text=text,
            text_hash=str(position),
            embedding=[0.0] * settings.EMBEDDING_DIMENSIONS,
            word_count=len(text.split()),
        )
    sections = material_sections(course=course)
    assert [path for path, _text in sections] == ["Plants › Photosynthesis", "Plants › Summary"]
    assert section_headings(sections) == ["Plants", "Photosynthesis", "Summary"]
    client.force_login(teacher)
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert 'value="Photosynthesis"' in page and 'value="Summary"' not in page
    client.post(f"/courses/{course.pk}/concepts/accept/", {"name": ["Photosynthesis"]})
    concept = Concept.objects.get(course=course)
    client.post(f"/courses/{course.pk}/questions/generate/", {"concept": concept.pk})
    prompts = list(PracticeQuestion.objects.values_list("prompt", flat=True))
    assert "What is photosynthesis?" in prompts
    assert not any("living things" in p for p in prompts)  # only the concept's section
