"""llama.cpp's own OpenAI-compatible server (the C++ one), from the xllamacpp wheel.

xllamacpp ships llama.cpp prebuilt in a manylinux/macOS/Windows wheel, so `plano[local]`
installs in seconds instead of compiling llama-cpp-python for minutes. Its server is
llama.cpp's `llama-server`: it sends token usage at the end of a stream when the request asks
for it (`stream_options.include_usage`), which the gateway always does, and it queues requests
beyond its one slot rather than interrupting a running stream.

Run as `python -m proxy.embedded.llama_server --model FILE --alias NAME --port N
[--ctx N] [--threads N] [--chat-template NAME]`; it serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading

from proxy.embedded.chat_template import TEMPLATES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m proxy.embedded.llama_server")
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--alias", required=True, help="the model id the server answers to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, default=2048, help="context window, in tokens")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--chat-template",
        choices=sorted(TEMPLATES),
        help="serve with this template instead of the GGUF's own (see chat_template.py)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}  # a set of names; a str would become its letters
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    # One slot, the whole context for it: further requests wait their turn.
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.ui = False  # llama.cpp's web UI: the gateway serves the API only
    if args.chat_template:
        # Jinja templates are on by default (use_jinja); tool calling needs them.
        params.chat_template = TEMPLATES[args.chat_template]
    # Loads the model (a bad file raises here, and the process exits non-zero) and starts
    # the HTTP server on its own threads.
    server = xllamacpp.Server(params)
    print(f"serving {args.alias} on {server.listening_address}", flush=True)
    stop.wait()


if __name__ == "__main__":
    main()
