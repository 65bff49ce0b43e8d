"""Quick start: run the gateway on the embedded model and talk to it with the official SDKs.

    pip install '.[local,demo]' && python demos/quickstart/run.py

It starts `plano up demos/quickstart/config.yaml`, sends a few prompts through the
OpenAI and Anthropic SDKs (one of them streamed), prints the answers, shows where the
router would send three prompts, and stops the gateway. No API keys, no GPU, no network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yaml"


def main() -> int:
    from proxy.config import load_config

    listener = load_config(CONFIG).model_listener
    base = f"http://127.0.0.1:{listener.port}"
    gateway = subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "up", "--quiet", str(CONFIG)], stdin=subprocess.DEVNULL
    )
    try:
        wait_for(f"{base}/healthz", gateway, timeout_s=180)
        talk(base)
        routing(base)
        return 0
    finally:
        gateway.send_signal(signal.SIGTERM)  # a graceful stop: in-flight requests finish
        gateway.wait(timeout=60)


def wait_for(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"plano up exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the gateway did not answer {url} within {timeout_s:.0f}s")


def talk(base: str) -> None:
    import anthropic
    import openai

    # Any key works: the local provider needs none, and Plano holds provider keys anyway.
    oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    an = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    question = "Name one primary color."

    reply = oa.chat.completions.create(
        model="fast", temperature=0, max_tokens=40, messages=[{"role": "user", "content": question}]
    )
    show(
        "OpenAI SDK, chat.completions",
        question,
        reply.choices[0].message.content,
        f"{reply.usage.prompt_tokens} in / {reply.usage.completion_tokens} out",
    )

    print("\n== OpenAI SDK, streaming ==\n> Count from one to five.\n", end="")
    stream = oa.chat.completions.create(
        model="local/smollm2-135m",
        temperature=0,
        max_tokens=40,
        stream=True,
        messages=[{"role": "user", "content": "Count from one to five."}],
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()

    message = an.messages.create(
        model="fast",
        max_tokens=40,
        system="You answer in one short sentence.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    show(
        "Anthropic SDK, messages (translated to the OpenAI wire)",
        "What is the capital of France?",
        message.content[0].text,
        f"{message.usage.input_tokens} in / {message.usage.output_tokens} out, "
        f"stop_reason={message.stop_reason}",
    )


def routing(base: str) -> None:
    """Where prompts would go, from the decision-only endpoint: no model is called."""
    import json
    import urllib.request

    print("\n== Routing decisions (POST /routing/v1/chat/completions) ==")
    for prompt in (
        "What is 15% of 80?",
        "Write a two-line poem about the sea.",
        "Hi! How is your day going?",
    ):
        request = urllib.request.Request(
            f"{base}/routing/v1/chat/completions",
            data=json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            decision = json.load(response)
        print(
            f"> {prompt}\n  route={decision['route'] or '(none: the default model)'} "
            f"model={decision['model']} backend={decision['backend']} "
            f"{decision['latency_ms']:.1f} ms"
        )


def show(title: str, question: str, answer: str | None, usage: str) -> None:
    print(f"\n== {title} ==\n> {question}\n{(answer or '').strip()}\n[{usage}]")


if __name__ == "__main__":
    os.chdir(HERE.parent.parent)
    sys.exit(main())
