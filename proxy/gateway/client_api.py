"""The client APIs the model listener speaks, and the upstream wire each one matches."""

from __future__ import annotations

from types import ModuleType

from proxy.canonical import ChatRequest, ChatResponse
from proxy.providers.catalog import Wire
from proxy.wire import anthropic_messages, openai_chat, openai_responses

CODECS: dict[Wire, ModuleType] = {Wire.OPENAI: openai_chat, Wire.ANTHROPIC: anthropic_messages}


class ClientAPI:
    """One client-facing API: how to read its requests and write its responses.

    `wire` is the upstream wire format that speaks the same API, for the passthrough;
    None when no upstream does (the Responses API is always translated).
    `holds_stream`: its stream renderer keeps the whole answer (to end with it), so a
    stream's size is bounded like a non-streaming answer's.
    """

    holds_stream = False

    def __init__(self, name: str, wire: Wire | None, codec: ModuleType):
        self.name, self.wire, self.codec = name, wire, codec

    def parse_request(self, body: dict) -> ChatRequest:
        return self.codec.parse_request(body)

    def render_response(self, resp: ChatResponse, model: str, body: dict) -> dict:
        return self.codec.render_response(resp, model)

    def stream_renderer(self, model: str, body: dict):
        if self.codec is openai_chat:
            return openai_chat.StreamRenderer(model, openai_chat.wants_usage_in_stream(body))
        return self.codec.StreamRenderer(model)

    def render_error(self, status: int, message: str) -> dict:
        return self.codec.render_error(status, message)


class ResponsesAPI(ClientAPI):
    """The OpenAI Responses API, for one request: it knows its response id up front, and
    keeps its stream renderer so the finished response can be stored."""

    holds_stream = True  # response.completed carries the whole output

    def __init__(self, response_id: str, previous_id: str | None):
        super().__init__("openai_responses", None, openai_responses)
        self.response_id = response_id
        self.previous_id = previous_id
        self.renderer: openai_responses.StreamRenderer | None = None

    def render_response(self, resp: ChatResponse, model: str, body: dict) -> dict:
        return openai_responses.render_response(
            resp, model, self.response_id, body, self.previous_id
        )

    def stream_renderer(self, model: str, body: dict):
        self.renderer = openai_responses.StreamRenderer(
            model, self.response_id, body, self.previous_id
        )
        return self.renderer


OPENAI_CHAT = ClientAPI("openai_chat", Wire.OPENAI, openai_chat)
# Errors of /v1/responses before a request has its own ResponsesAPI (bad JSON, say).
OPENAI_RESPONSES = ClientAPI("openai_responses", None, openai_responses)
ANTHROPIC_MESSAGES = ClientAPI("anthropic_messages", Wire.ANTHROPIC, anthropic_messages)


def api_for_path(path: str) -> ClientAPI:
    """The API whose error shape answers for a path: Anthropic's under /v1/messages (and its
    routing twin), OpenAI's everywhere else, unknown paths included."""
    if path.startswith(("/v1/messages", "/routing/v1/messages")):
        return ANTHROPIC_MESSAGES
    return OPENAI_CHAT
