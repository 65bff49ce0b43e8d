"""A small agent as users write them: an aiohttp server that asks Plano's model listener
for its answer with the OpenAI SDK, passing on the traceparent it received, and answers
Chat Completions (JSON, or a stream when asked) with its id in front."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import openai
import orjson
from aiohttp import web


@dataclass
class LLMAgent:
    id: str
    model: str  # what it asks the model listener for
    model_url: str = ""  # Plano's model listener: set once Plano is up
    seen: list[dict] = field(default_factory=list)  # requests, with their headers

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append({"headers": dict(request.headers), "body": body})
        headers = {}
        if "traceparent" in request.headers:  # the agent's LLM call joins Plano's trace
            headers["traceparent"] = request.headers["traceparent"]
        async with openai.AsyncOpenAI(
            base_url=self.model_url + "/v1", api_key="unused", max_retries=0
        ) as client:
            completion = await client.chat.completions.create(
                model=self.model,
                messages=[m for m in body["messages"] if m.get("role") != "system"],
                extra_headers=headers,
            )
        text = f"[{self.id}] {completion.choices[0].message.content}"
        answer_id = f"chatcmpl-{uuid.uuid4().hex}"
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": answer_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, piece in enumerate(text.split(" ")):
            delta = {"content": piece if index == 0 else " " + piece}
            await response.write(self._chunk(answer_id, delta, None))
        await response.write(self._chunk(answer_id, {}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _chunk(self, answer_id: str, delta: dict, finish: str | None) -> bytes:
        chunk = {
            "id": answer_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
