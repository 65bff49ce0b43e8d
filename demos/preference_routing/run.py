"""Preference routing demo: code to the coding model, reasoning to the reasoning model,
small talk to the default.

    pip install '.[demo]' && python demos/preference_routing/run.py

It starts `plano up demos/preference_routing/config.yaml` and asks the gateway's
`/routing/v1/chat/completions` endpoint where each prompt would go: no model is called,
so no API key is needed. With OPENAI_API_KEY and ANTHROPIC_API_KEY set, it also sends each
prompt through `/v1/chat/completions` with the OpenAI SDK and prints who answered.
Exits 1 when a prompt lands on the wrong route.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yaml"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")

PROMPTS = [
    (
        "Write a Python function that merges two sorted lists into one sorted list.",
        "code_generation",
    ),
    (
        "Fix the bug in this JavaScript: for (let i = 0; i <= arr.length; i++) sum += arr[i];",
        "code_generation",
    ),
    ("Add unit tests for a class that parses ISO 8601 dates.", "code_generation"),
    ("Prove that the square root of 2 is irrational.", "complex_reasoning"),
    (
        "Three boxes are mislabeled apples, oranges and mixed. You may draw one fruit from one "
        "box. How do you relabel all of them? Reason step by step.",
        "complex_reasoning",
    ),
    (
        "Plan a migration of a monolith to services in phases, weighing risks at each step.",
        "complex_reasoning",
    ),
    ("Hi there! How are you today?", None),
    ("Thanks, that was helpful. Have a nice evening!", None),
    ("What's your favourite colour?", None),
]


def main() -> int:
    from proxy.config import load_config

    live = all(os.environ.get(key) for key in KEYS)
    env = dict(os.environ)
    for key in KEYS:  # routing needs no key; the gateway only needs the variables set
        env.setdefault(key, "placeholder-not-a-key")
    listener = load_config(CONFIG, env=env).model_listener
    base = f"http://127.0.0.1:{listener.port}"
    gateway = subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "up", "--quiet", str(CONFIG)],
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(f"{base}/healthz", gateway, timeout_s=120)
        wrong = route_all(base)
        if live:
            chat_all(base)
        else:
            print("\n(set OPENAI_API_KEY and ANTHROPIC_API_KEY to also send the prompts)")
        return 1 if wrong else 0
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)


def route_all(base: str) -> int:
    wrong = 0
    print(f"{'expected':<18} {'route':<18} {'model':<30} {'ms':>6}  prompt")
    for prompt, expected in PROMPTS:
        decision = post_json(
            f"{base}/routing/v1/chat/completions",
            {"messages": [{"role": "user", "content": prompt}]},
        )
        ok = decision["route"] == expected
        wrong += not ok
        print(
            f"{expected or '(default)':<18} {decision['route'] or '(none)':<18} "
            f"{decision['model']:<30} {decision.get('latency_ms', 0):>6.1f}  "
            f"{'' if ok else 'WRONG '}{prompt[:60]}"
        )
    print(f"\n{len(PROMPTS) - wrong}/{len(PROMPTS)} prompts on the expected route")
    return wrong


def chat_all(base: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    for prompt, _ in PROMPTS:
        raw = client.chat.completions.with_raw_response.create(
            model="none",  # let the router choose
            max_tokens=200,
            messages=[{"role": "user", "content": prompt}],
        )
        reply = raw.parse()
        print(
            f"\n== {raw.headers.get('x-plano-route') or '(default)'} -> "
            f"{raw.headers.get('x-plano-model')} ==\n> {prompt}\n"
            f"{(reply.choices[0].message.content or '').strip()[:400]}"
        )


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


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


if __name__ == "__main__":
    os.chdir(HERE.parent.parent)
    sys.exit(main())
