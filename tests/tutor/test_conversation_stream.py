"""A tutoring turn end to end: the page posts a message, a real Celery worker claims the
reply and streams it from the LLM test server into Redis, and the async SSE view under a
real ASGI server (uvicorn) relays it token by token; reconnecting resumes; Stop works."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tutor.models import Message

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WORDS = " ".join(f"word{i}" for i in range(40))


@dataclasses.dataclass
class Event:
    id: str | None
    name: str
    data: dict
    at: float


class EventReader:
    """Reads server-sent events from the ASGI server as they arrive."""

    def __init__(self, base_url: str, path: str, *, cookie: str, last_event_id: str | None = None):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        headers = {"Cookie": cookie, "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()[:500]
        assert self.response.getheader("Content-Type") == "text/event-stream"

    def __iter__(self):
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    yield Event(
                        id=fields.get("id"),
                        name=fields["event"],
                        data=json.loads(fields.get("data", "{}")),
                        at=time.monotonic(),
                    )
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def browser_client(student):
    client = Client()
    client.force_login(student)
    return client


@pytest.fixture
def cookie(browser_client):
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={browser_client.cookies[name].value}"


def _post(client, course, text):
    response = client.post(reverse("conversations:post", args=[course.pk]), {"text": text})
    assert response.status_code == 302, response.content[:500]
    return Message.objects.filter(role="assistant").latest("pk")


def _stream_path(course, reply):
    return reverse("conversations:stream", args=[course.pk, reply.pk])


def _wait_for_status(reply, statuses, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply.refresh_from_db()
        if reply.status in statuses:
            return reply
        time.sleep(0.05)
    raise AssertionError(f"reply stayed {reply.status}")


def test_a_reply_streams_token_by_token_through_the_worker_redis_and_sse(
    celery_worker, asgi_server, llm_server, search, browser_client, cookie, course
):
    llm_server.script(reply=WORDS, ttft=0.2, tokens_per_second=40)
    reply = _post(browser_client, course, "Tell me forty words")
    events = list(EventReader(asgi_server.url, _stream_path(course, reply), cookie=cookie))

    tokens = [e for e in events if e.name == "token"]
    assert events[-1].name == "end" and events[-1].data == {"status": "done"}
    assert "".join(e.data["text"] for e in tokens) == WORDS
    # Pieces arriving within FLUSH_SECONDS (100 ms) of each other travel together; at 40
    # tokens/s that still makes many events.
    assert 5 <= len(tokens) <= 40
    # Delivered as produced (about one second of generation), not buffered to the end.
    assert events[-1].at - tokens[0].at > 0.6
    assert len({e.id for e in events}) == len(events)

    reply = _wait_for_status(reply, Message.FINISHED)
    assert reply.text == WORDS
    assert reply.model == llm_server.model
    assert reply.ttft_seconds >= 0.2
    assert llm_server.stats.chat_requests == 1


def test_a_reader_that_reconnects_resumes_after_the_last_event_it_saw(
    celery_worker, asgi_server, llm_server, search, browser_client, cookie, course
):
    llm_server.script(reply=WORDS, tokens_per_second=40)
    reply = _post(browser_client, course, "Tell me forty words")
    first = EventReader(asgi_server.url, _stream_path(course, reply), cookie=cookie)
    seen = []
    for event in first:
        seen.append(event)
        if len(seen) == 5:
            break
    first.close()  # the page was reloaded mid-reply

    rest = list(
        EventReader(
            asgi_server.url, _stream_path(course, reply), cookie=cookie, last_event_id=seen[-1].id
        )
    )
    assert rest[-1].name == "end"
    text = "".join(e.data.get("text", "") for e in [*seen, *rest])
    assert text == WORDS

    reply = _wait_for_status(reply, Message.FINISHED)
    assert reply.status == Message.Status.DONE


def test_stop_ends_the_stream_and_keeps_the_partial_reply(
    celery_worker, asgi_server, llm_server, search, browser_client, cookie, course
):
    llm_server.script(reply=" ".join(f"w{i}" for i in range(400)), tokens_per_second=40)
    reply = _post(browser_client, course, "Talk a lot")
    reader = EventReader(asgi_server.url, _stream_path(course, reply), cookie=cookie)
    events = []
    for event in reader:
        events.append(event)
        if len(events) == 5:
            response = browser_client.post(
                reverse("conversations:stop", args=[course.pk, reply.pk]), HTTP_HX_REQUEST="true"
            )
            assert response.status_code == 204
    assert events[-1].data == {"status": "stopped"}
    reply = _wait_for_status(reply, Message.FINISHED)
    assert reply.status == Message.Status.STOPPED
    assert 5 <= len(reply.text.split()) < 400
    assert reply.text == "".join(e.data.get("text", "") for e in events)


def test_a_failed_reply_ends_the_stream_and_the_page_offers_a_retry(
    celery_worker, asgi_server, llm_server, search, browser_client, cookie, course
):
    llm_server.fail_next(10, status=503)
    reply = _post(browser_client, course, "Hello?")
    events = list(EventReader(asgi_server.url, _stream_path(course, reply), cookie=cookie))
    assert [e.name for e in events] == ["end"]
    assert events[0].data == {"status": "failed"}
    response = browser_client.get(
        reverse("conversations:reply", args=[course.pk, reply.pk]), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "not reachable right now" in html
    assert "Retry" in html
    assert Message.objects.filter(role="user", text="Hello?").exists()


def test_a_quiet_reply_stream_yields_keep_alives_instead_of_failing():
    """A reader blocks longer than redis-py's default 5-second socket timeout when the
    model is slow to start; that must read as "nothing yet", not as an error."""
    from asgiref.sync import async_to_sync

    from tutor import streams

    async def first_two():
        seen = []
        async for batch in streams.reply_stream_batches(message_id=987654, block_ms=5500):
            seen.extend([None] if batch is None else batch)
            if len(seen) == 1:
                streams.reply_stream_end(message_id=987654, status="done")
            if len(seen) == 2:
                return seen
        return seen

    events = async_to_sync(first_two)()
    assert events[0] is None
    assert events[1].kind == streams.KIND_END


def test_the_streams_read_in_one_event_loop_share_one_reader_and_a_new_one_joins_at_once():
    """One blocking read follows every stream relayed in an event loop: a stream followed
    while that read waits on another is taken in at once (its events come before any
    keep-alive, although the shared read blocks longer), and two readers of the same
    stream at different places each get what follows their own place."""
    from asgiref.sync import async_to_sync

    from tutor import streams

    quiet, ended = 987655, 987656
    streams.reply_stream_reset(message_id=quiet)
    streams.reply_stream_reset(message_id=ended)
    first = streams.reply_stream_append(message_id=ended, text="one ")
    streams.reply_stream_append(message_id=ended, text="two")
    streams.reply_stream_end(message_id=ended, status="done")

    async def read(message_id: int, after: str) -> list:
        seen: list = []
        async for batch in streams.reply_stream_batches(
            message_id=message_id, after=after, block_ms=5000
        ):
            seen.extend([None] if batch is None else batch)
            if batch is None or batch[-1].kind == streams.KIND_END:
                return seen
        return seen

    async def together():
        waiting = asyncio.ensure_future(read(quiet, streams.START))
        await asyncio.sleep(0.2)  # the shared read now blocks on the quiet stream
        relay = streams._relays[asyncio.get_running_loop()]
        assert relay._blocked
        whole = await read(ended, streams.START)
        resumed = await read(ended, first)
        waiting.cancel()
        return whole, resumed

    whole, resumed = async_to_sync(together)()
    assert [(e.kind, e.text or e.status) for e in whole] == [
        ("token", "one "),
        ("token", "two"),
        ("end", "done"),
    ]
    assert [(e.kind, e.text or e.status) for e in resumed] == [("token", "two"), ("end", "done")]
