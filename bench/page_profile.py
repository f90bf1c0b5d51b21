"""Profile the CPU one page request costs, for every page the load test's users open.

    .venv/bin/python -m bench.page_profile --requests 30

On a database of its own seeded as ``bench/load.py`` seeds it (demo material ingested, an
essay assignment, users of the three roles with sessions), each page of each role is
requested ``--requests`` times after one warm-up request, in this process, with the
production database pool, twice:

- through the ASGI application uvicorn serves (``config.asgi``, the session cookie as a
  browser sends it): the CPU milliseconds per request (the process's CPU time, all
  threads, so a loaded machine does not skew it) and the number of SQL queries;
- through Django's test client (WSGI: the same middleware and views in this thread)
  under ``cProfile``, whose top entries over all pages are printed by cumulative and by
  own time (``--top``; cProfile sees one thread, and ASGI runs views in another).
  ``--pstats FILE`` keeps the raw profile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import time

from bench.stack import asgi_get, bench_database, profile_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="per page, after a warm-up")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--page", default="", help="only the pages whose name contains this")
    parser.add_argument("--pstats", default="", help="a file to keep the raw profile in")
    args = parser.parse_args()

    # As in production and in bench/stack.py: each process borrows pooled connections.
    os.environ.setdefault("DB_POOL", "1")
    old_config, _redis_url = bench_database("bench_page_profile", redis_db=12)
    from django.db import connections
    from django.test.utils import override_settings, teardown_databases

    try:
        with override_settings(ALLOWED_HOSTS=["*"]):
            _profile(args)
    finally:
        connections.close_all()
        teardown_databases(old_config, verbosity=0)


def _profile(args) -> None:
    from django.conf import settings
    from django.test import Client

    from bench.load import _pages, _seed
    from config.asgi import application

    # As bench/stack.py's settings: warnings and errors only (no access log line).
    logging.getLogger().setLevel(logging.WARNING)
    users = _seed(1, 20)
    cookie = settings.SESSION_COOKIE_NAME
    profile = cProfile.Profile()
    rows = []
    for role in ("student", "teacher", "admin"):
        user = next(u for u in users if u.role == role)
        cookies = {cookie: user.session}
        client = Client()
        client.cookies[cookie] = user.session
        for name, path in _pages(user):
            if args.page not in name:
                continue
            status = asyncio.run(_get(application, path, cookies))  # warm-up
            client.get(path)
            queries = _queries_of(lambda: client.get(path))  # noqa: B023 - called at once
            started = time.process_time()
            for _index in range(args.requests):
                asyncio.run(_get(application, path, cookies))
            asgi_ms = (time.process_time() - started) / args.requests * 1000
            started = time.process_time()
            profile.enable()
            for _index in range(args.requests):
                client.get(path)
            profile.disable()
            wsgi_ms = (time.process_time() - started) / args.requests * 1000
            rows.append((role, name, status, asgi_ms, wsgi_ms, len(queries)))

    print(f"{'role':8} {'page':16} {'status':>6} {'ASGI CPU ms':>12} {'profiled WSGI':>14}", end="")
    print(f" {'queries':>8}")
    for role, name, status, asgi_ms, wsgi_ms, n_queries in rows:
        print(f"{role:8} {name:16} {status:>6} {asgi_ms:12.1f} {wsgi_ms:14.1f} {n_queries:>8}")
    mean = sum(row[3] for row in rows) / len(rows)
    print(f"mean ASGI CPU ms per page request: {mean:.1f} ({args.requests} requests per page)")
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    print(f"\n===== all pages, {args.requests} requests each, by cumulative time =====")
    print(profile_table(out.getvalue()))
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print("\n===== all pages, by own time =====")
    print(profile_table(out.getvalue()))
    if args.pstats:
        stats.dump_stats(args.pstats)


def _queries_of(call) -> list[str]:
    """The SQL ``call`` runs in this thread (a request resets Django's query log)."""
    from django.db import connection

    queries: list[str] = []

    def keep(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        call()
    if os.environ.get("PAGE_PROFILE_SQL"):
        for sql in queries:
            print("   ", " ".join(sql.split())[:200])
    return queries


async def _get(application, path: str, cookies: dict[str, str]) -> int:
    """One GET through the ASGI application, as uvicorn hands it over; the status (the
    CSRF cookie it sets is kept for the next)."""
    status, headers, _ = await asgi_get(application, path, cookies)
    for header, value in headers:
        if header == b"set-cookie" and value.startswith(b"csrftoken="):
            cookies["csrftoken"] = value.split(b";", 1)[0].split(b"=", 1)[1].decode()
    return status


if __name__ == "__main__":
    main()
