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
import uuid
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


def _entry_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class _Follower:
    """One reader of one reply's stream: where it is, and the batches waiting for it."""

    def __init__(self, key: str, after: str) -> None:
        self.key = key
        self.after = after
        self.inbox: asyncio.Queue[list[StreamEvent] | BaseException] = asyncio.Queue()


class _Relay:
    """The reader of one event loop for every reply stream it relays: a single blocking
    ``XREAD`` over all the followed streams, whose entries go to each stream's followers.

    A reader per stream cost a command, its reply and a wake-up of its own for every
    batch of every stream; under a class at once that was about half of the web
    process's CPU per turn. The ``XREAD`` also follows a stream of the relay's own,
    where a new follower adds an entry so that a read already blocked on the other
    streams returns and takes the new one in at once. The reading stops when nobody
    follows a stream, and starts again with the next follower."""

    READ_BLOCK_MS = 10_000
    # After a read that found entries, the next waits this long, so that it finds the
    # entries of many streams (and several of each) at once: a class's replies cost a
    # read per pause, not one per token of each reply, and a write to each reader per
    # pause at most (20 a second: smooth to the eye). Measured with 25 streams at 30
    # tokens/s in one loop: 17 ms of CPU per stream, against 66 ms with a read per stream
    # and 63 ms with the shared read without a pause. A blocking read still ends at
    # once with the first entry after a quiet spell.
    PAUSE_SECONDS = 0.05

    def __init__(self) -> None:
        self._followers: dict[str, set[_Follower]] = {}
        self._wake_key = f"tutor:relay:{uuid.uuid4().hex}"
        self._wake_after = START
        self._task: asyncio.Task[None] | None = None
        self._blocked = False  # an XREAD is waiting, with the streams followed before
        self._woken = False

    def _client(self) -> redis_async.Redis:
        # The socket timeout must outlast the blocking read, or a quiet stream reads as an
        # error (redis-py's default timeout is 5 s).
        return _async_redis(socket_timeout=self.READ_BLOCK_MS / 1000 + 10)

    async def follow(self, key: str, after: str) -> _Follower:
        follower = _Follower(key, after)
        self._followers.setdefault(key, set()).add(follower)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read())
        elif self._blocked and not self._woken:
            self._woken = True
            try:
                pipe = self._client().pipeline(transaction=False)
                pipe.xadd(self._wake_key, {"follow": key}, maxlen=10, approximate=True)
                pipe.expire(self._wake_key, STREAM_TTL_SECONDS)
                await pipe.execute()
            except BaseException:
                self.leave(follower)
                raise
        return follower

    def leave(self, follower: _Follower) -> None:
        followers = self._followers.get(follower.key)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.key]

    async def _read(self) -> None:
        client = self._client()
        while self._followers:
            # Typed as redis-py's argument (a dict of its key and id types) wants it.
            reads: dict[Any, Any] = {
                key: min((f.after for f in followers), key=_entry_order)
                for key, followers in self._followers.items()
            }
            reads[self._wake_key] = self._wake_after
            self._blocked, self._woken = True, False
            try:
                result = cast(
                    list[tuple[str, _Entries]],
                    await client.xread(reads, count=500, block=self.READ_BLOCK_MS),
                )
            except Exception as error:
                # Redis is away (or refused the read): every follower hears it.
                for followers in self._followers.values():
                    for follower in followers:
                        follower.inbox.put_nowait(error)
                self._followers.clear()
                return
            finally:
                self._blocked = False
            found = False
            for key, entries in result or ():
                if key == self._wake_key:
                    self._wake_after = entries[-1][0]
                    continue
                found = True
                events = [_event(entry_id, fields) for entry_id, fields in entries]
                for follower in self._followers.get(key, ()):
                    after = _entry_order(follower.after)
                    new = [event for event in events if _entry_order(event.id) > after]
                    if new:
                        follower.after = new[-1].id
                        follower.inbox.put_nowait(new)
            if found:
                await asyncio.sleep(self.PAUSE_SECONDS)


# One relay per event loop (uvicorn runs one per process), as the clients.
_relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Relay] = weakref.WeakKeyDictionary()


async def reply_stream_batches(
    *, message_id: int, after: str = START, block_ms: int = 10_000
) -> AsyncIterator[list[StreamEvent] | None]:
    """Events after entry id ``after``, as they arrive, until the ``end`` event: the events
    one read found together come as one list (a busy reader relays them as one write),
    and the ``end`` event ends the last list.

    Yields None whenever ``block_ms`` pass with nothing new, so the caller can send a
    keep-alive and check whether the reply is still alive. The streams followed in one
    event loop are read together (``_Relay``).
    """
    relay = _relays.get(asyncio.get_running_loop())
    if relay is None:
        relay = _relays[asyncio.get_running_loop()] = _Relay()
    follower = await relay.follow(_stream_key(message_id), after)
    try:
        while True:
            try:
                async with asyncio.timeout(block_ms / 1000):
                    batch = await follower.inbox.get()
            except TimeoutError:
                yield None
                continue
            # A follower slower than the relay (its client reads slowly) takes all that
            # waits for it in one write.
            while not isinstance(batch, BaseException) and not follower.inbox.empty():
                more = follower.inbox.get_nowait()
                batch = more if isinstance(more, BaseException) else batch + more
            if isinstance(batch, BaseException):
                raise batch
            for at, event in enumerate(batch):
                if event.kind == KIND_END:
                    yield batch[: at + 1]
                    return
            yield batch
    finally:
        relay.leave(follower)
