"""docker/Dockerfile and the scripts it runs refer to things that exist."""

from __future__ import annotations

import fnmatch
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# What the runtime image runs: it must be in the build context, not ignored.
NEEDED_IN_IMAGE = [
    "manage.py",
    "pyproject.toml",
    "config/settings.py",
    "config/asgi.py",
    "config/celery.py",
    "learners/models.py",
    "ai/llm.py",
    "grading/apps.py",
    "templates/base.html",
    "static/css/site.css",
    "docker/entrypoint.sh",
    "docker/healthcheck.py",
]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, heredoc bodies skipped."""
    text = re.sub(r"<<'PY'\n.*?\nPY\n", "\n", text, flags=re.S)
    text = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the context (last matching rule wins)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/") and fnmatch.fnmatch(parts[-1], pattern[3:])
        ):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def instructions(dockerfile_text) -> list[tuple[str, str]]:
    return _instructions(dockerfile_text)


def test_the_image_is_built_in_stages_and_runs_as_a_user_without_privileges(instructions):
    stages = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(stages) >= 2
    assert stages[0].endswith("AS build") and stages[-1].endswith("AS runtime")
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ("COPY", "--from=build /opt/venv /opt/venv") in instructions


def test_torch_is_the_pinned_cpu_build_from_pytorchs_cpu_index(dockerfile_text):
    pinned = [
        requirement
        for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]
        if requirement.startswith("torch")
    ]
    assert pinned == ["torch==2.13.0"]
    assert "ARG TORCH_VERSION=2.13.0" in dockerfile_text
    cpu_index = "pip install --index-url https://download.pytorch.org/whl/cpu"
    assert f'{cpu_index} "torch==${{TORCH_VERSION}}"' in dockerfile_text
    # Installing the rest must not swap torch for the CUDA build from PyPI.
    assert 'echo "torch==${TORCH_VERSION}+cpu" > /tmp/constraints.txt' in dockerfile_text
    assert "-c /tmp/constraints.txt" in dockerfile_text


def test_the_optional_dependency_groups_the_image_installs_exist(dockerfile_text):
    extras = re.search(r"ARG EXTRAS=(\S*)", dockerfile_text).group(1)
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get(
        "optional-dependencies", {}
    )
    for extra in filter(None, extras.split(",")):
        assert extra in optional, f"pyproject.toml has no optional group {extra!r}"


def test_what_the_image_copies_and_runs_exists(instructions):
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in NEEDED_IN_IMAGE:
        assert (ROOT / path).exists(), path
        assert not _ignored(path, patterns), f".dockerignore keeps {path} out of the image"
    for secret_or_bulk in (".env", ".venv/bin/python", "var/pgdata", ".git/HEAD", "tests/x.py"):
        assert _ignored(secret_or_bulk, patterns), secret_or_bulk
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    for arguments in copies:
        sources = [word for word in arguments.split() if not word.startswith("--")][:-1]
        for source in sources:
            if not arguments.startswith("--from="):
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "python manage.py collectstatic --noinput" in runs
    assert (ROOT / "manage.py").exists()
    for package in re.search(r"compileall -q ([\w ]+)", runs).group(1).split():
        assert (ROOT / package / "__init__.py").exists(), package
    entrypoint = dict(instructions)["ENTRYPOINT"]
    assert entrypoint == '["/app/docker/entrypoint.sh"]'
    assert os.access(DOCKER / "entrypoint.sh", os.X_OK), "entrypoint.sh must be executable"
    assert dict(instructions)["CMD"] == '["web"]'
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert 'CMD ["python", "/app/docker/healthcheck.py"]' in healthcheck


def test_the_entrypoint_runs_modules_that_exist():
    text = (DOCKER / "entrypoint.sh").read_text()
    subprocess.run(["sh", "-n", str(DOCKER / "entrypoint.sh")], check=True)
    for module in re.findall(r"uvicorn ([\w.]+):application", text):
        assert importlib.util.find_spec(module) is not None, module
    for app in re.findall(r"celery -A (\w+)", text):
        assert (ROOT / app / "celery.py").exists(), app
    roles = set(re.findall(r"^    ([\w-]+)\)$", text, flags=re.M))
    assert roles == {"web", "worker-llm", "worker-cpu", "beat", "migrate"}


def test_the_web_role_warms_at_startup():
    """The warm-up starts from the ASGI lifespan startup (config/asgi.py): a web server
    started with the lifespan off would load the embedding model on the first search."""
    text = (DOCKER / "entrypoint.sh").read_text()
    web = text.split("    web)", 1)[1].split(";;", 1)[0]
    assert "--lifespan on" in web
    assert "--lifespan off" not in web


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [(200, 0), (503, 1)],
)
def test_the_health_check_passes_only_on_a_200_from_healthz(status, exit_code):
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            seen["path"], seen["host"] = self.path, self.headers["Host"]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            **os.environ,
            "PORT": str(server.server_address[1]),
            "ALLOWED_HOSTS": ".example.org,tutor.example.org",
        }
        result = subprocess.run(
            [sys.executable, str(DOCKER / "healthcheck.py")], env=env, timeout=30
        )
    finally:
        server.shutdown()
    assert result.returncode == exit_code
    # A host Django accepts: the first one that is not a wildcard.
    assert seen == {"path": "/healthz", "host": "tutor.example.org"}


def test_the_health_check_fails_when_nothing_listens():
    env = {**os.environ, "PORT": "1"}
    result = subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py")], env=env, capture_output=True, timeout=30
    )
    assert result.returncode == 1
    assert b"no answer" in result.stdout


def test_static_files_collect_with_hashed_names_as_the_image_builds_them(
    instructions, dockerfile_text, deploy, tmp_path
):
    (run,) = [args for name, args in instructions if name == "RUN" and "collectstatic" in args]
    inline = dict(re.findall(r"([A-Z_]+)=(\S+)", run.split("python manage.py")[0]))
    image_env = deploy.dockerfile_env(dockerfile_text)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **{key: image_env[key] for key in ("STATIC_MANIFEST", "WHITENOISE_USE_FINDERS")},
        **inline,
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
    }
    assert inline.keys() >= {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = (tmp_path / "staticfiles" / "staticfiles.json").read_text()
    assert '"css/site.css": "css/site.' in manifest
    assert (tmp_path / "staticfiles" / "css" / "site.css.gz").exists()


def test_the_image_has_the_debian_packages_the_product_runs(dockerfile_text):
    makefile = (ROOT / "Makefile").read_text()
    wanted = set(re.search(r"^APT_PACKAGES := (.*)$", makefile, flags=re.M).group(1).split())
    # The browser tests' Chromium and the compilers of the real_llm tests' llama.cpp server:
    # the product never starts either.
    test_only = {"chromium", "g++", "cmake"}
    runtime = re.search(r'ARG RUNTIME_APT_PACKAGES="([^"]*)"', dockerfile_text).group(1)
    installed = set(runtime.split())
    assert installed == wanted - test_only
    assert "apt-get install -y --no-install-recommends" in dockerfile_text
