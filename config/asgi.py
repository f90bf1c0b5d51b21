"""ASGI entry point (uvicorn): streaming views do not hold a thread per client.

The application also speaks ASGI's lifespan protocol (Django's handler does not): at
startup each server process starts loading the embedding model in the background
(``config/warmup.py``), so the first search or reply does not wait for it.
"""

import os

import django

from config.asgi_handler import OneHopASGIHandler
from config.embedded import embedded_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
embedded_start()
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application

# The middleware and the view in one thread hop per request (config/asgi_handler.py).
django_application = OneHopASGIHandler()


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        return await django_application(scope, receive, send)
    from config.warmup import warm_up_in_background

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            warm_up_in_background()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
