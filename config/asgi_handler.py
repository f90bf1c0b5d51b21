"""Django's ASGI handler with the middleware and the view in one thread hop.

Django's own ``ASGIHandler`` builds the middleware chain in async mode. Most of our
middleware (Django's ``MiddlewareMixin`` ones, WhiteNoise, ours) is synchronous, and a
synchronous view then costs three hops between the event loop and the request's thread:
into the thread for the synchronous middleware, back to the loop for Django's async
view handling, and into the thread again for the view. Each hop is a future, a context
copy and a wake-up of each side: with ~50 ms of CPU per page on two cores under 200
users (issue 19), they were a few milliseconds of every request.

This handler builds the chain in sync mode, as WSGI does, and runs all of it, view
included, in one hop into the request's thread (``thread_sensitive``: the same per-request
thread Django gives each ASGI request, so database connections stay per request). An
async view (the reply streams) is called from there through ``async_to_sync``, which runs
it on the event loop as before; a streamed body is still sent by the loop after the
thread is done, so no thread is held per open stream.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class OneHopASGIHandler(ASGIHandler):
    def __init__(self) -> None:  # not ASGIHandler's, which builds the chain in async mode
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
