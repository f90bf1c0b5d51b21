"""Run the OpenAI-compatible test server standalone, for benchmarks without a GPU.

    .venv/bin/python -m bench.llm_server_main --port 8001 --ttft 0.3 --tokens-per-second 40

then point the product at it with ``LLM_BASE_URL=http://127.0.0.1:8001/v1``. It paces
every stream independently (no batching slowdown), so it measures the product's own
overhead around a model of the given speed, not the model. Ctrl+C stops it and prints the
counters.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.llm_server import DEFAULT_MODEL, LLMTestServer


def _reply_of_words(words: int) -> str:
    sentence = "Think about what the passage says about energy [1], then try the next step. "
    pieces = sentence.split()
    return " ".join(pieces[i % len(pieces)] for i in range(words)).strip() + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--ttft", type=float, default=0.3, help="seconds to the first token")
    parser.add_argument("--tokens-per-second", type=float, default=40.0, help="per stream")
    parser.add_argument("--reply-words", type=int, default=120, help="length of each reply")
    args = parser.parse_args()

    server = LLMTestServer(model=args.model, host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        server.script(
            reply=_reply_of_words(args.reply_words),
            ttft=args.ttft,
            tokens_per_second=args.tokens_per_second,
        )
        print(f"LLM test server at {server.base_url} (model {args.model!r})", flush=True)
        stop.wait()
        print(server.stats, flush=True)


if __name__ == "__main__":
    main()
