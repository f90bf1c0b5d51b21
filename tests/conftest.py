"""Shared fixtures: real PostgreSQL and Redis (embedded unless configured), rows for the
usual cast of a course, a real Celery worker and a real browser."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from tests.llm_server import llm_server, llm_server_session  # noqa: F401
from tests.real_llm_server import real_llm_server  # noqa: F401

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Actions and assertions in a browser wait this long for the page: long enough for a page
# served while the CPU is busy (two suites at once), short enough to fail clearly.
BROWSER_TIMEOUT_MS = 15_000
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_usernames = itertools.count(1)


def pytest_configure(config):
    """The embedded PostgreSQL and Redis of the test settings run before any test needs
    them (settings only describe them; config/embedded.py)."""
    from config.embedded import embedded_start

    embedded_start()


def pytest_collection_modifyitems(items):
    """Browser tests run last: Playwright's sync API keeps an event loop in the main
    thread for the rest of the session, which async tests must not meet."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("browser") is not None
            or "browser" in getattr(item, "fixturenames", ())
        )
    )


@pytest.fixture
def latest_schema_afterwards():
    """For a test that migrates the database back to test a migration: the database is
    brought to the newest migration of every app at the end, so the tests after it meet
    today's schema (a migration added later must not find the database stopped short)."""
    yield
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture(autouse=True)
def _empty_cache():
    """Counters in the shared cache (login throttling, budgets) start at zero per test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def eager_tasks():
    """Celery tasks run in the caller when enqueued (after the transaction commits)."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def clean_reply_streams(settings):
    """Reply streams are keyed by message id, and a fresh test database reuses ids."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter("tutor:reply:*", count=1000))
        if keys:
            client.delete(*keys)
        yield
    finally:
        client.close()


@pytest.fixture
def make_user(db):
    from learners.models import User

    def make(username: str | None = None, *, password: str = "pw-for-tests-1", **fields):
        user = User.objects.create_user(
            username=username or f"user{next(_usernames)}", password=password, **fields
        )
        user.raw_password = password
        return user

    return make


@pytest.fixture
def make_course(db):
    from learners.models import Course

    def make(title: str | None = None, **fields):
        title = title or f"Course {next(_usernames)}"
        return Course.objects.create(title=title, **fields)

    return make


@pytest.fixture
def enrol(db):
    from learners.models import Membership

    def enrol(user, course, role: str = "student"):
        return Membership.objects.create(user=user, course=course, role=role)

    return enrol


@pytest.fixture
def course(make_course):
    return make_course("Energy in Living Things")


@pytest.fixture
def other_course(make_course):
    return make_course("Another course")


@pytest.fixture
def student(make_user, enrol, course):
    user = make_user("student", display_name="Sam Student")
    enrol(user, course, "student")
    return user


@pytest.fixture
def teacher(make_user, enrol, course):
    user = make_user("teacher", display_name="Ms. Tanaka")
    enrol(user, course, "teacher")
    return user


@pytest.fixture
def other_student(make_user, enrol, other_course):
    user = make_user("other-student")
    enrol(user, other_course, "student")
    return user


@pytest.fixture
def other_teacher(make_user, enrol, other_course):
    user = make_user("other-teacher")
    enrol(user, other_course, "teacher")
    return user


@pytest.fixture
def staff_user(make_user):
    return make_user("site-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared evaluation data is not at {SHARED_DATA}")
    return SHARED_DATA


# --- A real LLM server (tests marked real_llm) --------------------------------------------


@pytest.fixture
def real_llm(settings, real_llm_server):  # noqa: F811 (the fixture imported above)
    """Point the product at the real model server: llama.cpp's server with SmolLM2 started
    for this run, or the one named by LLM_BASE_URL (test settings clear the setting itself,
    so every other test stays offline or on the loopback fake server)."""
    settings.LLM_BASE_URL = real_llm_server.base_url
    settings.LLM_MODEL = real_llm_server.model
    # A CPU server shares its few cores with the whole test run.
    settings.LLM_TIMEOUT_SECONDS = 300.0
    return real_llm_server


# --- A real Celery worker -----------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup):
    """A real worker (thread pool, both queues) on the real Redis broker, once per run.

    Tests that use it need ``@pytest.mark.django_db(transaction=True)`` so the rows they
    create are committed and visible to the worker's own connections.
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.loader.import_task_module("celery.contrib.testing.tasks")
    # Tasks left in the test queue by an interrupted earlier run must not run now.
    with app.connection_for_write() as conn:
        for queue in ("llm", "cpu"):
            conn.default_channel.queue_purge(queue)
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        queues=["llm", "cpu"],
        perform_ping_check=True,
        shutdown_timeout=30,
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    return celery_worker_session


# --- A real browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; `make test` installs Debian's chromium."
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in the test thread; the ORM calls our tests
    # make around it are ordinary synchronous code. Only browser tests (which run last)
    # get this: elsewhere a sync ORM call in async code fails as it would in production.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    # expect() has its own default (5 s), apart from the page's; both get the same.
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def login(page, live_server):
    """Log a user in through the real login form."""

    from tests.browser_helpers import login_through_form

    def login(user) -> None:
        login_through_form(page, live_server.url, user)

    return login
