"""Three small travel agents, each a plain aiohttp server speaking Chat Completions.

    python demos/travel_agents/agents.py [--model-url http://127.0.0.1:12000]

Each agent knows a few canned facts (no network), and asks Plano's model listener to
phrase its answer, with the OpenAI SDK, passing on the `traceparent` Plano sent it, so the
model call joins the request's trace. An answer handed on by an earlier agent arrives as
an assistant message carrying that agent's `name`; the agent puts those answers before its
own, so the last agent's answer covers the whole chain.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid

import openai
import orjson
from aiohttp import web

MODEL = "local/smollm2-135m"
FACTS = {
    "weather_agent": (
        10510,
        "You are WeatherAgent. Forecast: Paris 18C light rain; Rome 24C sunny; "
        "Tokyo 21C cloudy; London 15C showers.",
    ),
    "flight_agent": (
        10520,
        "You are FlightAgent. Flights: AF1234 London-Paris 09:10 gate B12 on time; "
        "AZ205 Paris-Rome 14:35 gate F4 delayed 20 min; JL44 London-Tokyo 19:00 on time.",
    ),
    "hotel_agent": (
        10530,
        "You are HotelAgent. Hotels: Hotel Lutetia Paris 240 EUR, rooms free; "
        "Hotel Artemide Rome 180 EUR, rooms free.",
    ),
}


def agent_app(agent_id: str, facts: str, model_url: str) -> web.Application:
    client = openai.AsyncOpenAI(base_url=f"{model_url}/v1", api_key="unused", max_retries=0)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or []
        earlier = [m for m in messages if m.get("role") == "assistant" and m.get("name")]
        question = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        prompt = [
            {"role": "system", "content": f"{facts} Answer in one short sentence."},
            {"role": "user", "content": str(question)},
        ]
        headers = {}
        if request.headers.get("traceparent"):
            headers["traceparent"] = request.headers["traceparent"]
        completion = await client.chat.completions.create(
            model=MODEL, messages=prompt, max_tokens=48, temperature=0, extra_headers=headers
        )
        text = (completion.choices[0].message.content or "").strip()
        # The last agent answers for the chain: the earlier agents' parts, then its own.
        answer = "\n".join([*(str(m.get("content")) for m in earlier), f"[{agent_id}] {text}"])
        if body.get("stream"):
            return await _stream(request, agent_id, answer)
        return web.json_response(_completion(agent_id, answer))

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)

    async def close(_app: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close)
    return app


def _completion(agent_id: str, text: str) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": agent_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


async def _stream(request: web.Request, agent_id: str, text: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    answer_id = f"chatcmpl-{uuid.uuid4().hex}"
    words = text.split(" ")
    deltas = [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
    for delta, finish in [*((d, None) for d in deltas), ({}, "stop")]:
        chunk = {
            "id": answer_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": agent_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def serve(model_url: str) -> None:
    runners = []
    for agent_id, (port, facts) in FACTS.items():
        runner = web.AppRunner(agent_app(agent_id, facts, model_url), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("agents listening on 10510, 10520, 10530", flush=True)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-url", default="http://127.0.0.1:12000")
    asyncio.run(serve(parser.parse_args().model_url))
