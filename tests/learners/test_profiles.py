from __future__ import annotations

import pytest

from learners.models import LearnerProfile
from learners.profiles import profile_update

pytestmark = pytest.mark.django_db

FORM = {
    "preferred_language": "es",
    "goals": "Pass the biology exam",
    "level": "intermediate",
    "interests": "football, cooking",
    "larger_text": "on",
    "dyslexia_font": "on",
}


def test_a_new_student_is_invited_to_onboard_on_the_home_page(client, student, learning_settings):
    client.force_login(student)
    response = client.get("/")
    assert b"Set up my profile" in response.content


def test_onboarding_saves_the_profile_and_the_language(client, student, learning_settings):
    client.force_login(student)
    page = client.get("/profile/")
    assert "Welcome! Tell us about yourself" in page.content.decode()
    response = client.post("/profile/", FORM)
    assert response.status_code == 302
    student.refresh_from_db()
    profile = student.learner_profile
    assert student.preferred_language == "es"
    assert profile.goals == "Pass the biology exam"
    assert profile.level == LearnerProfile.Level.INTERMEDIATE
    assert profile.onboarded_at is not None
    assert (profile.larger_text, profile.dyslexia_font, profile.reduced_motion) == (
        True,
        True,
        False,
    )
    assert response.cookies["django_language"].value == "es"


def test_the_interface_follows_the_preferred_language_after_login(
    client, student, learning_settings
):
    profile_update(user=student, preferred_language="es")
    client.force_login(student)
    html = client.get("/").content.decode()
    assert '<html lang="es">' in html
    assert "Mis cursos" in html  # "My courses" in Spanish
    student.preferred_language = "en"
    student.save()
    html = client.get("/").content.decode()
    assert '<html lang="en">' in html
    assert "My courses" in html


def test_preferences_become_classes_on_body(client, student, learning_settings):
    profile_update(user=student, preferred_language="en", larger_text=True, read_aloud=True)
    client.force_login(student)
    html = client.get("/").content.decode()
    assert '<body class="pref-larger-text pref-read-aloud"' in html
    assert "Set up my profile" not in html  # onboarding is done
    assert "js/read-aloud.js" in html


def test_the_profile_can_be_edited_later(client, student, learning_settings):
    profile_update(user=student, preferred_language="en", goals="old goal")
    client.force_login(student)
    page = client.get("/profile/").content.decode()
    assert "My profile" in page and "old goal" in page
    first = student.learner_profile.onboarded_at
    client.post("/profile/", {**FORM, "preferred_language": "en", "goals": "new goal"})
    student.learner_profile.refresh_from_db()
    assert student.learner_profile.goals == "new goal"
    assert student.learner_profile.onboarded_at == first


def test_an_unknown_language_or_level_is_refused(client, student):
    client.force_login(student)
    response = client.post("/profile/", {**FORM, "preferred_language": "xx"})
    assert response.status_code == 200
    assert not LearnerProfile.objects.filter(user=student).exists()
    with pytest.raises(ValueError):
        profile_update(user=student, preferred_language="en", level="genius")


def test_every_profile_input_has_a_label(client, student):
    client.force_login(student)
    html = client.get("/profile/").content.decode()
    for name in ("preferred_language", "goals", "level", "interests", "larger_text", "read_aloud"):
        assert f'<label for="id_{name}">' in html
