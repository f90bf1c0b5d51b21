"""docker/compose.yaml: the services, their order and health, and the settings they pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APP_SERVICES = ("migrate", "web", "worker-llm", "worker-cpu", "beat")

# Variables the app containers receive that something other than config/settings.py reads,
# each with its reader. Anything else passed to them must be a setting.
READ_ELSEWHERE = {
    "COMPOSE_PROFILES": "Docker Compose (which profiles start)",
    "DJANGO_SETTINGS_MODULE": "Django and Celery",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client (metrics of several processes)",
    "HF_HOME": "huggingface_hub (cache directory)",
    "HF_HUB_OFFLINE": "huggingface_hub (the embedding model is bundled, nothing downloads)",
    "OMP_NUM_THREADS": "torch / OpenMP (one thread per prefork process)",
    "TOKENIZERS_PARALLELISM": "Hugging Face tokenizers",
    "PATH": "the shell",
    "PYTHONDONTWRITEBYTECODE": "Python",
    "PYTHONUNBUFFERED": "Python",
}

# What a production deployment must set, with the value it must have where it matters.
REQUIRED_IN_PRODUCTION = {
    "SECRET_KEY": None,
    "REQUIRE_SECRET_KEY": "1",
    "DEBUG": "0",
    "ALLOWED_HOSTS": None,
    "CSRF_TRUSTED_ORIGINS": None,
    "SITE_URL": None,
    "DATABASE_URL": None,
    "REDIS_URL": None,
    "LLM_MODEL": None,
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_SSL_REDIRECT": "1",
    "TRUST_X_FORWARDED_PROTO": "1",
    "SECURE_HSTS_SECONDS": None,
    "LOG_FORMAT": "json",
    "STATIC_MANIFEST": "1",
    "STATIC_ROOT": None,
    "MEDIA_ROOT": None,
    "METRICS_WORKER_PORT": None,
}


def _entrypoint_names() -> set[str]:
    text = (DOCKER / "entrypoint.sh").read_text()
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def _healthcheck_names() -> set[str]:
    text = (DOCKER / "healthcheck.py").read_text()
    return set(re.findall(r"os\.environ\.get\(\"([A-Z_][A-Z0-9_]*)\"", text))


def test_the_compose_file_has_every_service_of_the_product(compose):
    services = compose["services"]
    assert set(services) >= {
        "web",
        "worker-llm",
        "worker-cpu",
        "beat",
        "postgres",
        "redis",
        "vllm",
        "migrate",
    }
    # One image for every Python process, built from the repository root.
    for name in APP_SERVICES:
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert services[name]["image"] == services["web"]["image"]
        assert services[name]["env_file"] == [{"path": "../.env"}]
        assert "media:/data/media" in services[name]["volumes"]


def test_each_process_runs_its_own_role(compose):
    services = compose["services"]
    assert {name: services[name]["command"] for name in APP_SERVICES} == {
        "migrate": ["migrate"],
        "web": ["web"],
        "worker-llm": ["worker-llm"],
        "worker-cpu": ["worker-cpu"],
        "beat": ["beat"],
    }
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    assert "uvicorn config.asgi:application" in entrypoint
    assert "--workers" in entrypoint
    assert re.search(r"worker -Q llm -P threads\s+\\?\s*-c", entrypoint)
    assert "worker -Q cpu -P prefork" in entrypoint
    assert "celery -A config beat" in entrypoint


def test_services_start_in_order_of_health(compose):
    services = compose["services"]
    for name in ("web", "worker-llm", "worker-cpu", "beat"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["restart"] == "no"
    assert services["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_long_running_services_have_health_checks(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "worker-llm", "worker-cpu", "vllm"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    assert services["web"]["healthcheck"]["test"] == [
        "CMD",
        "python",
        "/app/docker/healthcheck.py",
    ]
    assert "/healthz" in (DOCKER / "healthcheck.py").read_text()
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    # Each worker answers a ping addressed to its own node name (-n in the entrypoint).
    assert "-d llm@$$HOSTNAME" in services["worker-llm"]["healthcheck"]["test"][1]
    assert "-d cpu@$$HOSTNAME" in services["worker-cpu"]["healthcheck"]["test"][1]
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    assert '-n "llm@%h"' in entrypoint and '-n "cpu@%h"' in entrypoint
    # Processes without an HTTP server must not inherit the image's /healthz check.
    assert services["beat"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_postgres_has_pgvector_and_keeps_its_data(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "pgvector/pgvector:pg16"
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert set(compose["volumes"]) >= {"pgdata", "redisdata", "media", "models"}


def test_redis_never_drops_a_queued_task(compose):
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "redisdata:/data" in redis["volumes"]


def test_vllm_serves_the_configured_model_on_a_gpu_with_prefix_caching(compose, filled_env, deploy):
    vllm = compose["services"]["vllm"]
    assert vllm["image"].startswith("${VLLM_IMAGE:-vllm/vllm-openai:")
    args = [deploy.interpolate(str(arg), filled_env) for arg in vllm["command"]]
    assert args[args.index("--model") + 1] == filled_env["LLM_MODEL"]
    assert "--enable-prefix-caching" in args
    # The server's context window is the one the app budgets its prompts for.
    assert args[args.index("--max-model-len") + 1] == filled_env["LLM_CONTEXT_TOKENS"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert "models:/root/.cache/huggingface" in vllm["volumes"]
    # The app reaches it at the URL .env.example gives.
    assert filled_env["LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert "gpu" in filled_env["COMPOSE_PROFILES"].split(",")


def test_every_variable_passed_to_the_app_is_read_by_something(
    compose, env_example, dockerfile_text, compose_text, deploy
):
    readers = deploy.settings_env_names() | _entrypoint_names() | _healthcheck_names()
    for_compose = set(deploy.interpolated_names(compose_text))
    passed = set(env_example) | set(deploy.dockerfile_env(dockerfile_text))
    for name in APP_SERVICES:
        passed |= set(compose["services"][name].get("environment") or {})
    unread = passed - readers - set(READ_ELSEWHERE) - for_compose
    assert not unread, f"passed to the app containers but read by nothing: {sorted(unread)}"
    # And the reverse for Compose: every required ${NAME} is in .env.example.
    required = {name for name, op in deploy.interpolated_names(compose_text).items() if op is None}
    required |= {
        name for name, op in deploy.interpolated_names(compose_text).items() if op and "?" in op
    }
    assert required <= set(env_example), sorted(required - set(env_example))


def test_every_setting_production_needs_is_provided(production_env):
    for service, env in production_env.items():
        for name, expected in REQUIRED_IN_PRODUCTION.items():
            assert env.get(name), f"{service} gets no {name}"
            if expected is not None:
                assert env[name] == expected, f"{service}: {name}={env[name]!r}"
        assert env["DATABASE_URL"].startswith("postgres://tutor:")
        assert env["DATABASE_URL"].endswith("@postgres:5432/tutor")
        assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_the_database_password_is_one_value_for_postgres_and_the_app(
    compose, filled_env, production_env, deploy
):
    postgres_env = compose["services"]["postgres"]["environment"]
    password = deploy.interpolate(postgres_env["POSTGRES_PASSWORD"], filled_env)
    assert f"tutor:{password}@" in production_env["web"]["DATABASE_URL"]
    assert postgres_env["POSTGRES_USER"] == "tutor" and postgres_env["POSTGRES_DB"] == "tutor"


def test_only_the_proxy_and_a_local_port_are_published(compose):
    published = {
        name: service["ports"]
        for name, service in compose["services"].items()
        if "ports" in service
    }
    assert set(published) == {"web", "proxy"}
    assert all(port.startswith("127.0.0.1:") for port in published["web"])
    caddyfile = (DOCKER / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
    assert re.search(r"@private path /metrics", caddyfile)


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return result.returncode == 0


@pytest.mark.skipif(not _docker_compose_available(), reason="the docker compose plugin is absent")
def test_docker_compose_accepts_the_file(tmp_path: Path, filled_env):
    # A copy, so the env_file (../.env next to docker/) can be the filled-in example.
    (tmp_path / "docker").mkdir()
    for name in ("compose.yaml", "Caddyfile"):
        shutil.copy(DOCKER / name, tmp_path / "docker" / name)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in filled_env.items()))
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", "docker/compose.yaml"]
        + ["config", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
