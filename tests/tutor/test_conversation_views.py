"""The tutor pages: access, posting (with and without htmx), escaping, stop/retry/feedback,
memories, and the event stream of a finished reply."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tutor.models import Conversation, Feedback, Memory, Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _url(name, course, *args):
    return reverse(f"conversations:{name}", args=[course.pk, *args])


@pytest.fixture
def no_tasks(monkeypatch):
    queued = []
    monkeypatch.setattr("tutor.conversations._enqueue_reply", queued.append)
    return queued


def _reply(conversation, text="Done [1].", status=Message.Status.DONE, **fields):
    Message.objects.create(conversation=conversation, role="user", text="Q")
    return Message.objects.create(
        conversation=conversation, role="assistant", text=text, status=status, **fields
    )


# --- access ----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client, course):
    response = client.get(_url("tutor", course))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_member_opens_the_tutor_of_their_course(client, student, course):
    client.force_login(student)
    response = client.get(_url("tutor", course))
    assert response.status_code == 200
    assert b"Tutor: Energy in Living Things" in response.content
    # The page says the tutor is offline (no LLM_BASE_URL in tests).
    assert b"Offline mode: the tutor answers" in response.content


def test_a_teacher_of_the_course_may_use_its_tutor(client, teacher, course):
    client.force_login(teacher)
    assert client.get(_url("tutor", course)).status_code == 200


def test_the_page_says_nothing_of_offline_mode_when_a_model_is_configured(
    client, student, course, settings
):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    client.force_login(student)
    assert b"Offline mode: the tutor answers" not in client.get(_url("tutor", course)).content


def test_non_members_get_404_everywhere(client, other_student, student, course, conversation):
    reply = _reply(conversation)
    client.force_login(other_student)
    assert client.get(_url("tutor", course)).status_code == 404
    assert client.get(_url("detail", course, conversation.pk)).status_code == 404
    assert client.post(_url("post", course), {"text": "hi"}).status_code == 404
    assert client.get(_url("stream", course, reply.pk)).status_code == 404
    assert client.post(_url("stop", course, reply.pk)).status_code == 404
    assert client.post(_url("feedback", course, reply.pk), {"rating": "up"}).status_code == 404
    assert client.get(_url("memories", course)).status_code == 404


def test_a_classmate_cannot_open_someone_elses_conversation(
    client, make_user, enrol, course, conversation
):
    classmate = make_user("classmate")
    enrol(classmate, course)
    reply = _reply(conversation)
    client.force_login(classmate)
    assert client.get(_url("detail", course, conversation.pk)).status_code == 404
    assert client.get(_url("stream", course, reply.pk)).status_code == 404
    assert client.post(_url("retry", course, reply.pk)).status_code == 404
    assert client.post(_url("feedback", course, reply.pk), {"rating": "up"}).status_code == 404
    response = client.post(_url("post", course), {"text": "hi", "conversation": conversation.pk})
    assert response.status_code == 404
    assert conversation.messages.count() == 2


# --- posting ---------------------------------------------------------------------------


def test_the_first_message_starts_a_conversation_and_redirects_to_it(
    client, student, course, no_tasks
):
    client.force_login(student)
    response = client.post(_url("post", course), {"text": "What is ATP?"})
    conversation = Conversation.objects.get()
    assert response.status_code == 302
    assert response.url == _url("detail", course, conversation.pk)
    assert [m.role for m in conversation.messages.all()] == ["user", "assistant"]
    page = client.get(response.url)
    assert b"What is ATP?" in page.content
    assert b"The tutor is thinking" in page.content


def test_an_htmx_post_returns_the_new_turn_that_follows_the_stream(
    client, student, course, conversation, no_tasks
):
    client.force_login(student)
    response = client.post(
        _url("post", course),
        {"text": "Why are leaves green?", "conversation": conversation.pk},
        **HTMX,
    )
    assert response.status_code == 200
    reply = conversation.messages.get(role="assistant")
    html = response.content.decode()
    assert "Why are leaves green?" in html
    assert f'data-stream-url="{_url("stream", course, reply.pk)}?after=0-0"' in html
    assert 'hx-swap-oob="true"' in html  # a fresh, empty composer
    assert no_tasks == [reply.pk]


def test_the_first_message_names_the_conversation_and_hides_the_hint_without_a_reload(
    client, student, course, no_tasks
):
    client.force_login(student)
    client.post(_url("new", course))
    conversation = Conversation.objects.get(learner=student)
    page = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert f"Conversation {conversation.pk}</a>" in page
    hint = page[page.index('id="tutor-empty-hint"') :].split(">")[0]
    assert "hidden" not in hint
    response = client.post(
        _url("post", course),
        {"text": "Why are leaves green?", "conversation": conversation.pk},
        **HTMX,
    )
    html = response.content.decode()
    sidebar = html[html.index('<div id="tutor-conversation-list" hx-swap-oob="true">') :]
    assert "Why are leaves green?</a>" in sidebar.split("</div>")[0]
    assert f"Conversation {conversation.pk}" not in html
    assert '<p id="tutor-empty-hint" class="muted" hx-swap-oob="true" hidden>' in html
    page = client.get(_url("detail", course, conversation.pk)).content.decode()
    hint = page[page.index('id="tutor-empty-hint"') :].split(">")[0]
    assert "hidden" in hint


@pytest.mark.parametrize(
    ("text", "error"),
    [("   ", "Write a message first."), ("y" * 4001, "the limit is 4000")],
)
def test_an_empty_or_huge_message_gets_a_clear_error_and_nothing_is_stored(
    client, student, course, conversation, text, error, no_tasks
):
    client.force_login(student)
    response = client.post(
        _url("post", course), {"text": text, "conversation": conversation.pk}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#composer"
    assert error in response.content.decode()
    assert not Message.objects.exists()

    response = client.post(_url("post", course), {"text": text})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Message.objects.exists()
    assert Conversation.objects.count() == 1  # no empty conversation either


def test_html_in_messages_and_replies_is_escaped(client, student, course, conversation):
    Message.objects.create(conversation=conversation, role="user", text="<script>alert(1)</script>")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        status=Message.Status.DONE,
        text='<img src=x onerror="alert(2)"> **bold**',
    )
    client.force_login(student)
    html = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<strong>bold</strong>" in html


def test_a_failed_reply_says_why_in_the_learners_language(client, student, course, conversation):
    from ai.llm import LLMUnavailable

    Message.objects.create(conversation=conversation, role="user", text="¿Qué es la fotosíntesis?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        status=Message.Status.FAILED,
        error=LLMUnavailable.student_message,
    )
    student.preferred_language = "es"
    student.save(update_fields=["preferred_language"])
    client.force_login(student)
    html = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert "El modelo de lenguaje del tutor no está disponible ahora mismo" in html
    assert LLMUnavailable.student_message not in html


def test_the_page_renders_citations_as_links_to_their_passages(
    client, student, course, conversation
):
    _reply(
        conversation,
        text="See [1].",
        citations=[
            {"n": 1, "url": "/courses/1/#chunk-5", "title": "Photosynthesis", "excerpt": "Light…"}
        ],
    )
    client.force_login(student)
    html = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert '<a href="/courses/1/#chunk-5" class="citation" title="Photosynthesis">[1]</a>' in html


def test_the_conversation_page_query_count_does_not_grow_with_messages(
    client, student, course, conversation, django_assert_max_num_queries
):
    client.force_login(student)
    for _ in range(3):
        reply = _reply(conversation)
        Feedback.objects.create(message=reply, rating=1)
    with django_assert_max_num_queries(12) as few:
        client.get(_url("detail", course, conversation.pk))
    for _ in range(10):
        _reply(conversation)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(_url("detail", course, conversation.pk))


# --- stop, retry, feedback -------------------------------------------------------------


def test_stop_on_a_waiting_reply_stops_it(client, student, course, conversation):
    reply = _reply(conversation, text="", status=Message.Status.PENDING)
    client.force_login(student)
    assert client.post(_url("stop", course, reply.pk), **HTMX).status_code == 204
    reply.refresh_from_db()
    assert reply.status == Message.Status.STOPPED


def test_retry_requeues_a_failed_reply(client, student, course, conversation, no_tasks):
    reply = _reply(conversation, text="", status=Message.Status.FAILED, error="Server down.")
    client.force_login(student)
    page = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert "Server down." in page and "Retry" in page
    response = client.post(_url("retry", course, reply.pk), **HTMX)
    reply.refresh_from_db()
    assert reply.status == Message.Status.PENDING
    assert no_tasks == [reply.pk]
    assert "data-stream-url" in response.content.decode()


def test_feedback_is_saved_from_the_page(client, student, course, conversation):
    reply = _reply(conversation)
    client.force_login(student)
    response = client.post(
        _url("feedback", course, reply.pk), {"rating": "down", "comment": "Too vague"}, **HTMX
    )
    assert response.status_code == 200
    assert "Thank you for your feedback." in response.content.decode()
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment) == (-1, "Too vague")
    response = client.post(_url("feedback", course, reply.pk), {"rating": "sideways"}, **HTMX)
    assert "Choose thumbs up or thumbs down." in response.content.decode()


# --- memories --------------------------------------------------------------------------


def test_a_learner_sees_and_deletes_their_memories(client, student, course, other_student):
    mine = Memory.objects.create(learner=student, course=course, summary="Worked on <ATP>.")
    Memory.objects.create(learner=student, course=course, summary="Second session.")
    client.force_login(student)
    html = client.get(_url("memories", course)).content.decode()
    assert "Worked on &lt;ATP&gt;." in html and "Second session." in html
    client.post(_url("memory-delete", course, mine.pk))
    assert list(Memory.objects.values_list("summary", flat=True)) == ["Second session."]
    client.post(_url("memories-delete-all", course))
    assert not Memory.objects.exists()


def test_nobody_deletes_someone_elses_memory(client, student, course, make_user, enrol):
    memory = Memory.objects.create(learner=student, course=course, summary="private")
    classmate = make_user("classmate")
    enrol(classmate, course)
    client.force_login(classmate)
    assert client.post(_url("memory-delete", course, memory.pk)).status_code == 404
    assert "private" not in client.get(_url("memories", course)).content.decode()
    assert Memory.objects.exists()


# --- the event stream ------------------------------------------------------------------


def test_the_stream_of_a_finished_reply_ends_at_once(async_client, student, course, conversation):
    from asgiref.sync import async_to_sync

    reply = _reply(conversation)

    async def read() -> tuple:
        await async_client.aforce_login(student)
        response = await async_client.get(_url("stream", course, reply.pk))
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response, body.decode()

    response, body = async_to_sync(read)()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert body.endswith('event: end\ndata: {"status": "done"}\n\n')


def test_a_page_loaded_mid_reply_shows_the_text_so_far_and_resumes_after_it(
    client, student, course, conversation
):
    from tutor import streams

    reply = _reply(conversation, text="", status=Message.Status.STREAMING)
    streams.reply_stream_append(message_id=reply.pk, text="<b>Half</b> ")
    last = streams.reply_stream_append(message_id=reply.pk, text="way")
    client.force_login(student)
    html = client.get(_url("detail", course, conversation.pk)).content.decode()
    assert "&lt;b&gt;Half&lt;/b&gt; way</div>" in html
    assert f'{_url("stream", course, reply.pk)}?after={last}"' in html
    assert "The tutor is writing" in html


# --- reading writes nothing -------------------------------------------------------------


def _writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_opening_the_tutor_writes_nothing_even_with_a_stale_reply(client, student, course):
    """Replies whose worker died are the recovery sweep's to fail, not a page's."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    conversation = Conversation.objects.create(course=course, learner=student)
    stale = _reply(
        conversation,
        text="",
        status=Message.Status.STREAMING,
        claimed_at=timezone.now() - timedelta(hours=2),
    )
    client.force_login(student)
    client.get(_url("tutor", course))  # the session settles
    with CaptureQueriesContext(connection) as queries:
        pages = [
            client.get(_url("tutor", course)),
            client.get(_url("detail", course, conversation.pk)),
            client.get(_url("reply", course, stale.pk), **HTMX),
        ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert _writes(queries.captured_queries) == []
    stale.refresh_from_db()
    assert stale.status == Message.Status.STREAMING

    from tutor.conversations import replies_recover

    assert replies_recover()[0] == 1  # the sweep does fail it
    stale.refresh_from_db()
    assert stale.status == Message.Status.FAILED


def test_the_conversation_page_runs_as_many_queries_for_many_turns_as_for_one(
    client, student, course
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    conversation = Conversation.objects.create(course=course, learner=student)
    _reply(conversation)
    client.force_login(student)
    url = _url("detail", course, conversation.pk)
    client.get(url)
    with CaptureQueriesContext(connection) as one_turn:
        assert client.get(url).status_code == 200
    for _ in range(5):
        _reply(conversation)
    with CaptureQueriesContext(connection) as six_turns:
        assert client.get(url).status_code == 200
    assert len(six_turns) == len(one_turn)
    # Pinned: a change that adds a query to every page view should be a decision.
    assert len(one_turn) <= 12, [q["sql"] for q in one_turn.captured_queries]


# The htmx post of a message, in this order: the session and its user, the conversation
# with its course (and the membership check), the learner's consent to AI processing
# (with a model configured, today's tokens too), the count of the conversation's messages
# (busy? time for a memory?), both messages in one insert, the conversation's title and
# time, the sidebar, and the learner's display preferences (the layout's context); and the
# savepoint and its release that the test's transaction puts around the writes (in
# production their own transaction's BEGIN and COMMIT).
POST_QUERIES = 11


def test_the_htmx_post_of_a_message_runs_a_pinned_number_of_queries(
    client, student, course, conversation, no_tasks, django_assert_num_queries
):
    client.force_login(student)
    for text in ("first", "second"):
        Message.objects.filter(status__in=Message.UNFINISHED).update(status="done")
        with django_assert_num_queries(POST_QUERIES):
            response = client.post(
                _url("post", course), {"text": text, "conversation": conversation.pk}, **HTMX
            )
        assert response.status_code == 200
