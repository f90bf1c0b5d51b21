"""What the deployment files say, read the way Docker Compose and the settings read them."""

from __future__ import annotations

import ast
import re
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

# The metrics tests grade a real essay.
from tests.grading.workflow_factories import assignment, submit  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APP_SERVICES = ("migrate", "web", "worker-llm", "worker-cpu", "beat")
_ENV_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = variables.get(name)
        if op in (":-", ":?"):
            missing = not value
        elif op in ("-", "?"):
            missing = value is None
        else:
            return value or ""
        if not missing:
            return value
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return interpolate(arg, variables)

    return _INTERPOLATION.sub(replace, text)


def interpolated_names(text: str) -> dict[str, str | None]:
    """Each ${NAME} in the text and its operator (None for a plain ${NAME})."""
    return {
        match.group("name"): match.group("op")
        for match in _INTERPOLATION.finditer(text)
        if match.group("name")
    }


def settings_env_names() -> set[str]:
    """Names config/settings.py reads through the typed env helpers."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _ENV_HELPERS
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def dockerfile_env(text: str) -> dict[str, str]:
    """The ENV of the Dockerfile's last stage (the runtime image)."""
    joined = re.sub(r"\\\n", " ", text)
    last_stage = joined[joined.rindex("\nFROM ") :]
    values: dict[str, str] = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line):
                values[key] = value
    return values


@pytest.fixture(scope="session")
def compose_text() -> str:
    return (DOCKER / "compose.yaml").read_text()


@pytest.fixture(scope="session")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(ROOT / ".env.example")


@pytest.fixture(scope="session")
def filled_env(env_example) -> dict[str, str]:
    """.env.example with its CHANGE placeholders replaced, as an operator would."""
    values = dict(env_example)
    values["SECRET_KEY"] = secrets.token_urlsafe(50)
    values["POSTGRES_PASSWORD"] = secrets.token_hex(24)
    return values


@pytest.fixture(scope="session")
def dockerfile_text() -> str:
    return (DOCKER / "Dockerfile").read_text()


@pytest.fixture(scope="session")
def production_env(compose, filled_env, dockerfile_text) -> dict[str, dict[str, str]]:
    """The environment each app container starts with: image ENV, then env_file, then the
    service's `environment`, interpolated from the filled-in .env."""
    image_env = dockerfile_env(dockerfile_text)
    result = {}
    for name in APP_SERVICES:
        service = compose["services"][name]
        env = {**image_env, **filled_env}
        for key, value in (service.get("environment") or {}).items():
            env[key] = interpolate(str(value), filled_env)
        result[name] = env
    return result


@pytest.fixture(scope="session")
def deploy() -> SimpleNamespace:
    """The helpers above, for test modules (pytest's importlib mode cannot import conftest)."""
    return SimpleNamespace(
        ROOT=ROOT,
        DOCKER=DOCKER,
        APP_SERVICES=APP_SERVICES,
        read_env_file=read_env_file,
        interpolate=interpolate,
        interpolated_names=interpolated_names,
        settings_env_names=settings_env_names,
        dockerfile_env=dockerfile_env,
    )
