"""demos/guardrails/run.py end to end: `plano up` in a real process with built-in and http
filters, the local model through llama.cpp, the OpenAI and Anthropic SDKs, then
`plano traces` reading the filters' decisions back; offline, no keys."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="needs plano[local] (llama.cpp)"
)


def test_the_demo_blocks_redacts_and_records_an_observed_policy(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PLANO_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "demos" / "guardrails" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    sections = out.split("\n== ")
    jailbreak = next(s for s in sections if s.startswith("1."))
    assert "blocked: HTTP 400" in jailbreak
    assert "filter 'injection' blocked the request" in jailbreak
    http_block = next(s for s in sections if s.startswith("2."))
    assert "blocked: HTTP 400" in http_block
    assert "filter 'keyword_guard' blocked the request" in http_block
    assert "content_blocked" in http_block  # the filter's own body reaches the client
    observed = next(s for s in sections if s.startswith("4."))
    assert "answered" in observed
    # The trace store: the observed policy's would-be block, and the PII filter's change.
    would_block = next(s for s in sections if "filter=competitor_policy" in s.split("\n")[0])
    assert "competitor_policy (observe)" in would_block
    every_block = next(s for s in sections if s.startswith("plano traces list --where decision"))
    for name in ("injection", "keyword_guard", "competitor_policy (observe)"):
        assert name in every_block
    replaced = next(s for s in sections if "filter=pii" in s.split("\n")[0])
    assert "1 trace, newest first" in replaced  # the anonymized request, alone
    # What the model was sent: placeholders, never the values.
    shown = next(s for s in sections if s.startswith("plano traces show"))
    assert "pii                pii               modify" in shown
    prompt = shown.split("Request messages", 1)[1]
    assert "<PHONE_1>" in prompt
    assert "<EMAIL_1>" in prompt
    assert "jane.doe@example.com" not in prompt
