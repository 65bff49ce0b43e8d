"""A client that goes away while a stream is written: before its end, or only after.

The OpenAI SDK closes the connection as soon as it reads [DONE], without waiting for the
end of the chunked body. When aiohttp sees the connection close before the handler ends
the body, the handler is cancelled (handled since the stream's end was relayed); when the
handler gets there first, writing the body's end fails instead. Either way the client had
the whole answer, and the record says 200: under load (a shutdown finishing a dozen streams
at once) the second case happens, and a delivered stream was stored as 499.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import ClientConnectionResetError

from proxy.agents.chain import AgentChain
from proxy.canonical import ChatResponse, TextPart
from proxy.gateway.client_api import OPENAI_CHAT
from proxy.gateway.exchange import Exchange, Outcome
from proxy.gateway.relay import Relay, finish
from proxy.wire.model_name import KEEP_NAME
from proxy.wire.openai_chat import StreamParser
from proxy.wire.sse import SSEParser

CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":"hello"},"finish_reason":null}]}\n\n'
)
END = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


class Connection:
    """A response whose client leaves after `writes` successful writes: the next write,
    or the body's end, fails as aiohttp's does on a closing transport."""

    def __init__(self, writes: int):
        self.writes = writes
        self.written = b""

    async def write(self, data: bytes) -> None:
        if self.writes <= 0:
            raise ClientConnectionResetError("Cannot write to closing transport")
        self.writes -= 1
        self.written += data

    async def write_eof(self, data: bytes = b"") -> None:
        raise ClientConnectionResetError("Cannot write to closing transport")


async def relay_stream(parts: list[bytes], writes: int) -> tuple[Exchange, Connection]:
    exchange = Exchange(request_id="r1", api="openai_chat", path="/v1/chat/completions")
    exchange.status = 200  # committed
    connection = Connection(writes)
    relay = Relay(connection, exchange, StreamParser(), None, False, KEEP_NAME, str)
    sse = SSEParser()

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts[1:]:
            yield part

    tap = relay.tap
    first = [(event, tap.feed(event)) for event in sse.feed(parts[0])]
    await finish(relay, first, chunks(), sse, OPENAI_CHAT, "openai/m", "upstream openai/m")
    return exchange, connection


async def test_a_client_gone_before_the_body_end_had_the_whole_stream():
    exchange, connection = await relay_stream([CHUNK, END], writes=2)
    assert connection.written.endswith(b"data: [DONE]\n\n")
    assert (exchange.status, exchange.error, exchange.outcome) == (200, None, Outcome.OK)


async def test_a_client_gone_before_the_end_marker_is_a_client_disconnect():
    exchange, connection = await relay_stream([CHUNK, END], writes=1)
    assert b"[DONE]" not in connection.written
    assert (exchange.status, exchange.outcome) == (499, Outcome.CLIENT_DISCONNECT)
    assert exchange.error == "client disconnected"


async def test_an_agents_whole_answer_is_held_to_the_same_rule(monkeypatch):
    # An agent's answer that came whole is relayed as a stream with emit and close.
    from proxy.agents import chain

    exchange = Exchange(request_id="r2", api="openai_chat", path="/v1/chat/completions")
    exchange.status = 200
    connection = Connection(writes=2)  # the answer, then the [DONE] close() renders

    async def commit(serving, tap, renderer):
        return Relay(connection, serving.exchange, tap, renderer, False, KEEP_NAME, str)

    monkeypatch.setattr(chain, "_commit", commit)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    serving = chain._Serving(None, OPENAI_CHAT, exchange, body, OPENAI_CHAT.parse_request(body), {})
    answer = ChatResponse(id="a1", model="m", content=[TextPart("hello")])
    await AgentChain._stream_whole(None, serving, answer)
    assert connection.written.endswith(b"data: [DONE]\n\n")
    assert (exchange.status, exchange.error, exchange.outcome) == (200, None, Outcome.OK)
