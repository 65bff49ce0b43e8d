"""llama-cpp-python's OpenAI server, with token usage at the end of every chat stream.

Its server (0.3.x) ignores `stream_options` and sends no usage in streams, so streamed
requests to the local provider recorded no tokens and no cost. This runs that server
unchanged but for one thing: a streamed chat completion ends with the chunk OpenAI sends
for `include_usage` (`choices: []` and `usage`). Only the gateway talks to this server; it
asks for usage on every stream and drops the chunk again for clients that did not.

The counts are the ones the server reports for the same request unstreamed: the prompt
is the token list llama.cpp evaluates (`Llama.generate`'s argument), the completion the
tokens it generated, without the end-of-generation token that stops it.

Run as `python -m proxy.embedded.llama_server` with llama_cpp.server's arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# On the Llama instance: the counts of the request it is serving. The server serves one
# request at a time per model (a lock held for a whole stream), whose chunks may each be
# produced on another worker thread.
_COUNTS = "_plano_token_counts"


def patch(llama_class: Any) -> None:
    """Count what `generate` evaluates and yields; append the usage chunk to chat streams."""
    generate = llama_class.generate
    create_chat_completion = llama_class.create_chat_completion

    def counting_generate(self, tokens, *args, **kwargs) -> Iterator[int]:
        counts = getattr(self, _COUNTS, None)
        if counts is not None:
            counts["prompt"] += len(tokens)
        end = self.token_eos()
        for token in generate(self, tokens, *args, **kwargs):
            if counts is not None and token != end:
                counts["completion"] += 1
            yield token

    def chat_completion(self, *args, **kwargs):
        setattr(self, _COUNTS, None)
        result = create_chat_completion(self, *args, **kwargs)
        if not kwargs.get("stream"):
            return result
        return _with_usage(self, result)

    llama_class.generate = counting_generate
    llama_class.create_chat_completion = chat_completion


def _with_usage(llama: Any, chunks: Iterator[dict]) -> Iterator[dict]:
    # Generation starts at the first chunk: the counts must be in place by then.
    counts = {"prompt": 0, "completion": 0}
    setattr(llama, _COUNTS, counts)
    last = None
    try:
        for chunk in chunks:
            last = chunk
            yield chunk
    finally:
        setattr(llama, _COUNTS, None)
    if last is not None:
        prompt, completion = counts["prompt"], counts["completion"]
        yield {
            "id": last.get("id"),
            "object": "chat.completion.chunk",
            "created": last.get("created"),
            "model": last.get("model"),
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def main() -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as serve

    patch(llama_cpp.Llama)
    serve()


if __name__ == "__main__":
    main()
