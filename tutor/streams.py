"""The one module that owns the Redis streams of tutor reply tokens, and the stop flags.

Each assistant reply being written has a stream ``tutor:reply:<message id>``: the worker
appends ``token`` entries (``XADD``) as text arrives from the model and one final ``end``
entry; the web process reads it with blocking ``XREAD`` and relays it as server-sent
events. Entry ids double as SSE event ids, so a reader that reconnects (a reloaded page)
resumes after the last id it saw, or replays from the start. Streams expire a while after
their last write; the finished reply lives in the database, not here.

A stop request is a short-lived key the worker polls while the reply streams.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import redis
import redis.asyncio as redis_async
from django.conf import settings

# Long enough for a reader that lost its connection to come back and replay the reply.
STREAM_TTL_SECONDS = 3600
STOP_TTL_SECONDS = 900
START = "0-0"

KIND_TEXT = "token"
KIND_END = "end"

# Redis is not reachable (down, restarting, or still loading its data after a restart):
# pages degrade to what the database holds, and a worker ends its reply as failed.
UNAVAILABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)

_client_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url: str | None = None


def _stream_key(message_id: int) -> str:
    return f"tutor:reply:{message_id}"


def _stop_key(message_id: int) -> str:
    return f"tutor:reply:{message_id}:stop"


def _redis() -> redis.Redis:
    """A process-wide client (its pool is thread-safe); rebuilt when REDIS_URL changes."""
    global _client, _client_url
    with _client_lock:
        if _client is None or _client_url != settings.REDIS_URL:
            _client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
            _client_url = settings.REDIS_URL
        return _client


def streams_reachable() -> bool:
    """Whether the reply streams' Redis answers now (erasure needs it to finish)."""
    try:
        return bool(_redis().ping())
    except redis.RedisError:
        return False


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    id: str
    kind: str  # KIND_TEXT or KIND_END
    text: str = ""
    status: str = ""


# A stream's entries as our clients read them: redis-py types each reply as bytes or str
# (or an awaitable), but both clients decode (decode_responses=True).
_Entries = list[tuple[str, dict[str, str]]]


def _event(entry_id: str, fields: dict[str, Any]) -> StreamEvent:
    return StreamEvent(
        id=entry_id,
        kind=fields.get("kind", KIND_TEXT),
        text=fields.get("text", ""),
        status=fields.get("status", ""),
    )


# --- writing (the worker) ----------------------------------------------------------------


def reply_stream_append(*, message_id: int, text: str) -> str:
    """Append a piece of reply text; returns the entry id."""
    pipe = _redis().pipeline(transaction=False)
    pipe.xadd(_stream_key(message_id), {"kind": KIND_TEXT, "text": text})
    pipe.expire(_stream_key(message_id), STREAM_TTL_SECONDS)
    entry_id, _ = pipe.execute()
    return entry_id


class ReplyStreamWriter:
    """The worker's appends to one reply's stream, cheaper than ``reply_stream_append``
    for a reply written piece by piece: the stream's expiry is set with the first piece
    and renewed every ``TTL_RENEW_SECONDS`` (and by ``reply_stream_end``), so most pieces
    are a single ``XADD``, not a pipeline of two commands."""

    TTL_RENEW_SECONDS = 60.0

    def __init__(self, *, message_id: int) -> None:
        self.message_id = message_id
        self._key = _stream_key(message_id)
        self._renew_at = 0.0

    def append(self, text: str) -> str:
        now = time.monotonic()
        if now < self._renew_at:
            return cast(str, _redis().xadd(self._key, {"kind": KIND_TEXT, "text": text}))
        entry_id = reply_stream_append(message_id=self.message_id, text=text)
        self._renew_at = now + self.TTL_RENEW_SECONDS
        return entry_id


def reply_stream_end(*, message_id: int, status: str) -> str:
    """Mark the reply finished with its final status; readers stop after this entry."""
    pipe = _redis().pipeline(transaction=False)
    pipe.xadd(_stream_key(message_id), {"kind": KIND_END, "status": status})
    pipe.expire(_stream_key(message_id), STREAM_TTL_SECONDS)
    entry_id, _ = pipe.execute()
    return entry_id


def reply_stream_reset(*, message_id: int) -> None:
    """Forget an earlier attempt's stream and stop flag (before a retry writes anew)."""
    _redis().delete(_stream_key(message_id), _stop_key(message_id))


def reply_stream_text(*, message_id: int) -> str:
    """The text streamed so far (to keep what a reply wrote when its worker vanished)."""
    entries = cast(_Entries, _redis().xrange(_stream_key(message_id)))
    return "".join(
        fields.get("text", "") for _, fields in entries if fields.get("kind") == KIND_TEXT
    )


def reply_stream_snapshot(*, message_id: int) -> tuple[str, str]:
    """The text streamed so far and the id of the last entry read (START when none), so a
    page can show the text at once and read on from there."""
    text: list[str] = []
    last = START
    for entry_id, fields in cast(_Entries, _redis().xrange(_stream_key(message_id))):
        if fields.get("kind") != KIND_TEXT:
            break  # an ended stream: the page shows the stored reply instead
        text.append(fields.get("text", ""))
        last = entry_id
    return "".join(text), last


def reply_stop_request(*, message_id: int) -> None:
    _redis().set(_stop_key(message_id), "1", ex=STOP_TTL_SECONDS)


def reply_stop_requested(*, message_id: int) -> bool:
    return bool(_redis().exists(_stop_key(message_id)))


# --- reading (the web process, async) ----------------------------------------------------


# redis.asyncio connections belong to the event loop that opened them: a client per loop
# (uvicorn runs one per process), whose pool keeps a connection per concurrent read. A
# client per reader cost a new connection and its handshake for every page that follows a
# reply (about 3 ms of CPU).
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], redis_async.Redis]
] = weakref.WeakKeyDictionary()


def _async_redis(*, socket_timeout: float) -> redis_async.Redis:
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.REDIS_URL, socket_timeout)
    client = clients.get(key)
    if client is None:
        client = clients[key] = redis_async.Redis.from_url(
            settings.REDIS_URL, decode_responses=True, socket_timeout=socket_timeout
        )
    return client


async def reply_stream_batches(
    *, message_id: int, after: str = START, block_ms: int = 10_000
) -> AsyncIterator[list[StreamEvent] | None]:
    """Events after entry id ``after``, as they arrive, until the ``end`` event: the events
    one read found together come as one list (a busy reader relays them as one write),
    and the ``end`` event ends the last list.

    Yields None whenever ``block_ms`` pass with nothing new, so the caller can send a
    keep-alive and check whether the reply is still alive. The readers of one event loop
    share a client (``_async_redis``).
    """
    # The socket timeout must outlast the blocking read, or a quiet reply reads as an error
    # (redis-py's default timeout is 5 s).
    client = _async_redis(socket_timeout=block_ms / 1000 + 10)
    key = _stream_key(message_id)
    while True:
        result = cast(
            list[tuple[str, _Entries]],
            await client.xread({key: after}, count=500, block=block_ms),
        )
        if not result:
            yield None
            continue
        batch: list[StreamEvent] = []
        for _stream, entries in result:
            for entry_id, fields in entries:
                after = entry_id
                event = _event(entry_id, fields)
                batch.append(event)
                if event.kind == KIND_END:
                    yield batch
                    return
        yield batch
