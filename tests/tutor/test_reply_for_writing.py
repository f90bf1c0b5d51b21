"""What a reply's worker reads before it asks the model: the reply, its conversation, the
learner's profile, weakest concepts and memories in one query (each round trip before the
request adds to the student's wait for the first token)."""

from __future__ import annotations

import pytest

from learners.models import Concept, LearnerProfile
from learning.models import ConceptMastery
from tutor.conversation_selectors import reply_for_writing
from tutor.models import Conversation, Memory, Message
from tutor.replies import learner_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def reply(student, course):
    conversation = Conversation.objects.create(course=course, learner=student)
    Message.objects.create(conversation=conversation, role="user", text="What is ATP?")
    return Message.objects.create(conversation=conversation, role="assistant", status="pending")


def _mastery(learner, course, name, probability, *, enough_data=True):
    concept = Concept.objects.create(course=course, name=name)
    ConceptMastery.objects.create(
        learner=learner, concept=concept, probability=probability, enough_data=enough_data
    )


def test_one_query_reads_the_reply_the_profile_the_weakest_concepts_and_the_memories(
    reply, student, other_student, course, other_course, django_assert_num_queries
):
    LearnerProfile.objects.create(user=student, goals="Pass the exam", interests="Chess")
    for name, probability in (("Osmosis", 0.3), ("ATP", 0.1), ("Enzymes", 0.3), ("Cells", 0.4)):
        _mastery(student, course, name, probability)
    _mastery(student, course, "Light", 0.9)  # known
    _mastery(student, course, "Calvin cycle", 0.05, enough_data=False)  # not known yet
    _mastery(student, other_course, "Elsewhere", 0.01)  # another course
    _mastery(other_student, course, "Theirs", 0.01)  # another learner
    for summary in ("oldest", "older", "newer", "newest"):
        Memory.objects.create(learner=student, course=course, summary=summary)
    Memory.objects.create(
        learner=student, course=course, summary="this session", conversation=reply.conversation
    )
    Memory.objects.create(learner=student, course=other_course, summary="other course")
    Memory.objects.create(learner=other_student, course=course, summary="someone else's")

    with django_assert_num_queries(1):
        loaded = reply_for_writing(message_id=reply.pk)
        profile = learner_profile(
            learner=loaded.reply.conversation.learner, weak_concepts=loaded.weak_concepts
        )
        assert loaded.reply.conversation.course == course

    assert loaded.reply == reply
    # Weakest first; ties by name; at most three.
    assert loaded.weak_concepts == ["ATP", "Enzymes", "Osmosis"]
    # Newest first, at most three, never the session being written.
    assert loaded.memories == ["newest", "newer", "older"]
    assert profile.weak_concepts == ("ATP", "Enzymes", "Osmosis")
    assert profile.goals == "Pass the exam\nInterests: Chess"
    assert profile.level == ""  # not onboarded: no level is claimed


def test_a_learner_with_no_profile_weak_concepts_or_memories_gets_the_defaults(
    reply, student, django_assert_num_queries
):
    with django_assert_num_queries(1):
        loaded = reply_for_writing(message_id=reply.pk)
        profile = learner_profile(
            learner=loaded.reply.conversation.learner, weak_concepts=loaded.weak_concepts
        )
    assert (loaded.weak_concepts, loaded.memories) == ([], [])
    assert (profile.goals, profile.level, profile.weak_concepts) == ("", "", ())
    assert profile.language == student.preferred_language


def test_a_reply_that_is_gone_is_not_found():
    with pytest.raises(Message.DoesNotExist):
        reply_for_writing(message_id=10**9)
