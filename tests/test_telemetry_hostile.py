"""Hostile requests and answers cannot hold up anyone's trace: the real gateway, its real
telemetry worker process, the official OpenAI SDK, a raw socket, real SQLite.

Before: a prompt of one 25,000-character word stopped trace storage for everyone for ~47 s
(quadratic scrubbing); a request with `X-Model-Affinity: \\xff` made the worker drop its
whole batch (`could not write 9 traces`); a huge answer kept the writer busy for minutes.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from fakes.providers import text_reply
from test_telemetry_e2e import gateway, metrics, openai_client, wait_for

from proxy.telemetry import budget
from proxy.telemetry.store import TraceStore

# The trace of every request must be stored within this, however hostile the others.
PROMPT_S = 20.0
# Larger than the per-trace text budget, well within what the gateway relays.
HUGE_ANSWER = 4 * 1024 * 1024


def traces(path: Path, ids: list[str]) -> dict:
    """The stored traces of these ids, once every one of them is there (within PROMPT_S)."""

    def all_there() -> dict | None:
        with TraceStore.open(path) as store:
            found = {i: store.get_trace(i) for i in ids}
        ready = all(d is not None and d.summary is not None for d in found.values())
        return found if ready else None

    return wait_for(all_there, PROMPT_S)  # type: ignore[return-value]


def raw_post(url: str, headers: dict[str, str], body: dict) -> http.client.HTTPResponse:
    """A request the SDKs refuse to send: http.client writes a header value's characters
    as Latin-1 bytes, so "\\xff" goes out as the byte 0xff, which is not UTF-8."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def replaced(proxy) -> dict[str, float]:
    samples = metrics(proxy).get("plano_telemetry_fields_replaced", [])
    return {s.labels["field"]: s.value for s in samples if s.name.endswith("_total")}


def health(proxy) -> dict:
    with urllib.request.urlopen(proxy.server.admin_url + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def test_a_long_word_and_an_undecodable_header_hold_up_no_trace(tmp_path):
    word = "a" * 25_000
    with gateway(tmp_path) as (proxy, _):
        client = openai_client(proxy)
        ids = []
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": word}]
        )
        ids.append(raw.headers["x-plano-trace-id"])
        # A header Plano reads is refused at the edge (400), one it only copies onto spans
        # is served: both traces are stored, with the byte written out.
        affinity = raw_post(
            proxy.url,
            {"X-Model-Affinity": "\xff"},
            {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert affinity.status == 400
        ids.append(affinity.headers["x-plano-trace-id"])
        team = raw_post(
            proxy.url,
            {"X-Team": "\xff"},
            {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert team.status == 200
        ids.append(team.headers["x-plano-trace-id"])
        for n in range(5):
            raw = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"question {n}"}]
            )
            ids.append(raw.headers["x-plano-trace-id"])
        started = time.monotonic()
        stored = traces(tmp_path / "traces.db", ids)
        waited = time.monotonic() - started
        fields = replaced(proxy)
        stats = health(proxy)

    assert waited < PROMPT_S
    long_word, odd_affinity, odd_team = (stored[i] for i in ids[:3])
    # The word is one long token: masked like a key, as it always was, but now at once.
    assert long_word.calls[0].request_messages == [{"role": "user", "content": "********"}]
    # The refused header never became the session; its copy on the spans is written out.
    assert (odd_affinity.calls[0].status, odd_affinity.calls[0].session) == (400, None)
    inbound = next(s for s in odd_affinity.spans if s.name == "plano(inbound)")
    assert inbound.attributes["x-model-affinity"] == "\\xff"
    inbound = next(s for s in odd_team.spans if s.name == "plano(inbound)")
    assert inbound.attributes["x-team"] == "\\xff"
    # Each escaped copy is counted as a replacement.
    assert fields == {"attributes": 2.0}
    for i in ids[2:]:
        assert stored[i].calls[0].status == 200
    assert (stats["store_errors"], stats["store_lost"]) == (0, 0)


def test_a_huge_prompt_and_answer_are_stored_cut_and_the_next_traces_promptly(tmp_path):
    with gateway(tmp_path) as (proxy, ups):
        client = openai_client(proxy)
        # Over the per-trace text budget: stored with its head and tail.
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "a " * (HUGE_ANSWER // 2)}]
        )
        ids = [raw.headers["x-plano-trace-id"]]
        # Over what the gateway captures of an answer (1 MiB): relayed whole, stored marked.
        ups["openai"][0].push(text_reply("a " * (HUGE_ANSWER // 2)))
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "everything, please"}]
        )
        assert len(raw.parse().choices[0].message.content) >= HUGE_ANSWER - 1
        ids.append(raw.headers["x-plano-trace-id"])
        for n in range(5):
            raw = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"question {n}"}]
            )
            ids.append(raw.headers["x-plano-trace-id"])
        stored = traces(tmp_path / "traces.db", ids)
        truncated = metrics(proxy).get("plano_telemetry_truncated", [])

    prompt = stored[ids[0]].calls[0].request_messages[0]["content"]
    assert "characters not stored" in prompt
    assert len(prompt) < budget.MAX_TEXT + 100
    assert ({"reason": "text"}, 1.0) in [
        (s.labels, s.value) for s in truncated if s.name.endswith("_total")
    ]
    for i in ids[:2]:
        inbound = next(s for s in stored[i].spans if s.name == "plano(inbound)")
        assert inbound.attributes["plano.messages.truncated"] is True
    for i in ids[2:]:
        assert (
            "plano.messages.truncated"
            not in next(s for s in stored[i].spans if s.name == "plano(inbound)").attributes
        )
