"""The tutor's REST API: posting, replies, stop, retry, feedback and memories."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tutor.models import Conversation, Feedback, Memory, Message

pytestmark = pytest.mark.django_db


def _api(name, course, *args):
    return reverse(f"conversations:api-{name}", args=[course.pk, *args])


@pytest.fixture
def api(client, student):
    client.force_login(student)
    return client


def test_posting_starts_a_conversation_and_the_offline_reply_arrives(
    api, course, search, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            _api("post", course),
            {"text": "What is photosynthesis?"},
            content_type="application/json",
        )
    assert response.status_code == 201
    body = response.json()
    assert body["question"]["text"] == "What is photosynthesis?"
    assert body["reply"]["status"] == "pending"
    reply_id = body["reply"]["id"]
    assert body["reply"]["stream_url"] == reverse(
        "conversations:stream", args=[course.pk, reply_id]
    )

    reply = api.get(_api("reply", course, reply_id)).json()
    assert reply["status"] == "done"
    assert reply["mode"] == "offline"
    assert reply["stream_url"] is None
    assert [c["n"] for c in reply["citations"]] == [1, 2]

    conversation = api.get(_api("conversation", course, body["conversation"]["id"])).json()
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert [c["id"] for c in api.get(_api("conversations", course)).json()] == [
        body["conversation"]["id"]
    ]


@pytest.mark.parametrize("text", ["", "x" * 4001])
def test_an_empty_or_huge_message_is_a_400_and_stores_nothing(api, course, text):
    response = api.post(_api("post", course), {"text": text}, content_type="application/json")
    assert response.status_code == 400
    assert not Message.objects.exists()
    assert not Conversation.objects.exists()


def test_a_course_needing_consent_answers_403(api, course):
    course.requires_ai_consent = True
    course.save()
    response = api.post(_api("post", course), {"text": "hi"}, content_type="application/json")
    assert response.status_code == 403
    assert "agree to AI processing" in response.json()["detail"]


def test_someone_elses_conversation_and_replies_are_404(
    client, course, make_user, enrol, conversation
):
    Message.objects.create(conversation=conversation, role="user", text="Q")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", text="A", status="done"
    )
    classmate = make_user("classmate")
    enrol(classmate, course)
    client.force_login(classmate)
    assert client.get(_api("conversation", course, conversation.pk)).status_code == 404
    assert client.get(_api("reply", course, reply.pk)).status_code == 404
    assert client.post(_api("stop", course, reply.pk)).status_code == 404
    response = client.post(
        _api("post", course),
        {"text": "hi", "conversation": conversation.pk},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert client.get(_api("conversations", course)).json() == []


def test_stop_retry_and_feedback(api, course, conversation, monkeypatch):
    queued = []
    monkeypatch.setattr("tutor.conversations._enqueue_reply", queued.append)
    Message.objects.create(conversation=conversation, role="user", text="Q")
    reply = Message.objects.create(conversation=conversation, role="assistant", status="pending")

    assert api.post(_api("stop", course, reply.pk)).status_code == 202
    reply.refresh_from_db()
    assert reply.status == "stopped"

    response = api.put(
        _api("feedback", course, reply.pk),
        {"rating": -1, "comment": "cut short"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert Feedback.objects.get().rating == -1
    assert (
        api.put(
            _api("feedback", course, reply.pk), {"rating": 3}, content_type="application/json"
        ).status_code
        == 400
    )

    response = api.post(_api("retry", course, reply.pk))
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert queued == [reply.pk]
    assert api.post(_api("retry", course, reply.pk)).status_code == 409  # pending: nothing to retry


def test_memories_are_listed_and_deleted(api, student, course):
    first = Memory.objects.create(learner=student, course=course, summary="one")
    Memory.objects.create(learner=student, course=course, summary="two")
    assert {m["summary"] for m in api.get(_api("memories", course)).json()} == {"one", "two"}
    assert api.delete(_api("memory", course, first.pk)).status_code == 204
    assert api.delete(_api("memories", course)).status_code == 204
    assert not Memory.objects.exists()
