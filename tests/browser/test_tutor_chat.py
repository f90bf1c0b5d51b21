"""A student chats with the tutor in a real browser: tokens stream in, reloading mid-reply
resumes, Stop keeps what was written. Served by uvicorn (ASGI), not the WSGI live_server,
which would buffer the event stream; replies come from a real Celery worker and the LLM
test server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import login_through_form
from tests.tutor.asgi import asgi_server, asgi_server_session  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WORDS = [f"word{i}" for i in range(90)]
# A busy machine may take a while to hand the reply to the worker.
FIRST_TOKENS_MS = 15_000


@pytest.fixture
def passages(monkeypatch):
    from tutor.context import Passage

    found = [
        Passage(
            n=1,
            chunk_id=1,
            title="Photosynthesis",
            section="What photosynthesis does",
            text="Photosynthesis is the process by which green plants turn light into sugar.",
            url="/courses/1/#chunk-1",
        )
    ]
    monkeypatch.setattr("tutor.replies.passages_search", lambda **kwargs: found)


@pytest.fixture
def chat(page, asgi_server, student, course):  # noqa: F811
    login_through_form(page, asgi_server.url, student)
    page.goto(f"{asgi_server.url}/courses/{course.pk}/tutor/")
    return page


def _send(page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()


def test_a_student_sees_the_reply_stream_in_and_a_reload_resumes_it(
    chat, celery_worker, llm_server, passages
):
    page = chat
    llm_server.script(reply=" ".join(WORDS) + " [1]", tokens_per_second=15)
    _send(page, "What is <b>photosynthesis</b>?")

    # The student's message is shown as text, never as HTML.
    expect(page.locator(".tutor-message--user").last).to_contain_text(
        "What is <b>photosynthesis</b>?"
    )
    streaming = page.locator("[data-stream-text]")
    expect(streaming).to_contain_text("word3", timeout=FIRST_TOKENS_MS)
    # Still writing: the Stop button is there and the last words have not come yet.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    assert "word89" not in streaming.inner_text()

    page.reload()
    # After the reload the text so far is back and the rest keeps coming.
    expect(page.locator("[data-stream-text]")).to_contain_text("word1")
    final = page.locator(".tutor-message--assistant .tutor-markdown")
    expect(final).to_contain_text("word89", timeout=20_000)
    text = final.inner_text()
    assert text.count("word10 ") == 1  # nothing replayed twice
    expect(final.get_by_role("link", name="[1]")).to_have_attribute("href", "/courses/1/#chunk-1")
    expect(page.get_by_role("button", name=re.compile("Helpful"))).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)


def test_stop_keeps_what_the_tutor_wrote(chat, celery_worker, llm_server, passages):
    page = chat
    llm_server.script(reply=" ".join(WORDS * 5), tokens_per_second=15)
    _send(page, "Tell me everything")
    expect(page.locator("[data-stream-text]")).to_contain_text("word4", timeout=FIRST_TOKENS_MS)
    page.get_by_role("button", name="Stop").click()

    expect(page.get_by_text("You stopped this reply.")).to_be_visible()
    reply = page.locator(".tutor-message--assistant .tutor-markdown").last
    expect(reply).to_contain_text("word4")
    assert len(reply.inner_text().split()) < 300
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


def test_markup_in_a_reply_is_shown_as_text_while_streaming_and_after(
    chat, celery_worker, llm_server, passages
):
    page = chat
    attack = 'Look: <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> done'
    llm_server.script(reply=attack, tokens_per_second=10)
    _send(page, "Show me")
    expect(page.locator("[data-stream-text]")).to_contain_text(
        "<img src=x", timeout=FIRST_TOKENS_MS
    )
    final = page.locator(".tutor-message--assistant .tutor-markdown")
    expect(final).to_contain_text("done", timeout=20_000)
    expect(final).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert final.locator("img, script").count() == 0
    assert page.evaluate("window.pwned") is None
