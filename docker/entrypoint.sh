#!/bin/sh
# The image's entry point: the first argument names a role, the rest is passed on.
#   web | worker-llm | worker-cpu | beat | migrate | any other command (run as given)
# Sizes come from the environment (see .env.example); defaults suit one small server.
set -eu

# Metric files of processes from an earlier run of this container would be added to the
# new ones; start from an empty directory.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
    web)
        # The lifespan protocol is on: config/asgi.py starts each process's warm-up at
        # startup (config/warmup.py), so the first search or reply does not load the
        # embedding model. Requests are logged by config.logging.RequestIdMiddleware, so
        # uvicorn's access log is off. uvicorn does
        # not read X-Forwarded-For: Django does, only from TRUSTED_PROXIES
        # (config/client_address.py), and X-Forwarded-Proto by TRUST_X_FORWARDED_PROTO.
        # A worker importing torch, or starved of CPU under load, answers uvicorn's health
        # ping late; at the default 5 s a load test once saw a worker replaced mid-run
        # (the new one then spent its CPU loading the model again), so it gets 30 s.
        exec uvicorn config.asgi:application \
            --host 0.0.0.0 --port "${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-4}" \
            --lifespan on --no-access-log --no-server-header \
            --no-proxy-headers \
            --timeout-keep-alive 75 --timeout-graceful-shutdown 30 \
            --timeout-worker-healthcheck 30 \
            "$@"
        ;;
    worker-llm)
        # Calls to the LLM server wait on the network, and the server batches concurrent
        # requests: many threads in one process.
        exec celery -A config worker -Q llm -P threads \
            -c "${LLM_WORKER_CONCURRENCY:-64}" -n "llm@%h" -l "${LOG_LEVEL:-INFO}" \
            "$@"
        ;;
    worker-cpu)
        # Parsing, embedding and model fitting: one process per core, one thread each.
        exec celery -A config worker -Q cpu -P prefork \
            -c "${CPU_WORKER_CONCURRENCY:-$(nproc)}" -n "cpu@%h" -l "${LOG_LEVEL:-INFO}" \
            --max-tasks-per-child "${CPU_WORKER_MAX_TASKS_PER_CHILD:-200}" \
            "$@"
        ;;
    beat)
        exec celery -A config beat -l "${LOG_LEVEL:-INFO}" \
            --schedule /tmp/celerybeat-schedule "$@"
        ;;
    migrate)
        python manage.py migrate --noinput "$@"
        exec python manage.py check --deploy --fail-level ERROR
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
