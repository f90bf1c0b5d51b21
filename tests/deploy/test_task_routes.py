"""Every Celery task has an explicit name (queued messages name tasks by it, so a module
can move without stranding them) and one route in CELERY_TASK_ROUTES, the only place a
task's queue is said."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
APP_DIRS = ("config", "learners", "tutor", "grading")


def _task_decorators():
    for app_dir in APP_DIRS:
        for path in (ROOT / app_dir).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef):
                    continue
                for decorator in node.decorator_list:
                    target = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if getattr(target, "id", getattr(target, "attr", None)) == "shared_task":
                        yield path.relative_to(ROOT), node.name, decorator


def test_every_task_names_itself_and_says_no_queue_of_its_own():
    found = list(_task_decorators())
    assert found, "no tasks found: the scan is broken"
    for path, function, decorator in found:
        keywords = (
            {kw.arg: kw.value for kw in decorator.keywords}
            if isinstance(decorator, ast.Call)
            else {}
        )
        assert "name" in keywords, f"{path}:{function} has no explicit name="
        assert "queue" not in keywords, f"{path}:{function} routes itself; use CELERY_TASK_ROUTES"
        name = keywords["name"].value
        assert name in settings.CELERY_TASK_ROUTES, f"{name} has no route"


def test_every_registered_task_of_ours_is_routed_to_a_queue_a_worker_consumes():
    from config.celery import app

    app.loader.import_default_modules()
    ours = [name for name in app.tasks if name.split(".")[0] in APP_DIRS]
    assert ours, "no tasks registered"
    queues = {queue.name for queue in app.conf.task_queues}
    for name in ours:
        assert settings.CELERY_TASK_ROUTES[name]["queue"] in queues, name
    assert set(settings.CELERY_TASK_ROUTES) == set(ours)
