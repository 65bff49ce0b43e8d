"""The client APIs the model listener speaks, and the upstream wire each one matches."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from proxy.providers.catalog import Wire
from proxy.wire import anthropic_messages, openai_chat

CODECS: dict[Wire, ModuleType] = {Wire.OPENAI: openai_chat, Wire.ANTHROPIC: anthropic_messages}


@dataclass(frozen=True, slots=True)
class ClientAPI:
    name: str
    wire: Wire  # an upstream of this wire takes the passthrough fast path
    codec: ModuleType

    def stream_renderer(self, model: str, body: dict):
        if self.codec is openai_chat:
            return openai_chat.StreamRenderer(model, openai_chat.wants_usage_in_stream(body))
        return self.codec.StreamRenderer(model)


OPENAI_CHAT = ClientAPI("openai_chat", Wire.OPENAI, openai_chat)
ANTHROPIC_MESSAGES = ClientAPI("anthropic_messages", Wire.ANTHROPIC, anthropic_messages)
