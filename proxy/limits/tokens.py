"""Counting a request's input tokens before dispatch, offline.

The count is gpt-4o's: o200k_base, run by OpenAI's tiktoken, with the message framing of
OpenAI's cookbook ("How to count tokens with tiktoken": 3 tokens a message, 1 more for a
name, 3 to prime the reply, and its formula for function tools), which matches the API's
`usage.prompt_tokens` on the cookbook's published examples (tests/test_limits_tokens.py).

tiktoken downloads o200k_base at first use, which fails without a network. The ranks come
from a package instead: quicktok-v1 ships the same 199,998 ranks in a binary file of its
own; they are read into tiktoken's `Encoding` and checked against the SHA-256 tiktoken
itself expects of o200k_base.tiktoken, so a changed or damaged file is refused, never
trusted. Without that package, tiktoken's own loader runs (its cache, else its download),
bounded in time; without either, an estimate from the UTF-8 length, with a warning.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import json
import logging
import math
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from proxy.canonical import ChatRequest, ImagePart, Message, TextPart, Tool

log = logging.getLogger("plano.limits")

ENCODING = "o200k_base"
# What tiktoken_ext.openai_public expects of o200k_base.tiktoken.
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
# o200k_base's pre-tokenizer, as tiktoken_ext.openai_public defines it.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
RANKS_PACKAGE = "quicktok"  # the PyPI package quicktok-v1
RANKS_FILE = "data/o200k.vocab"
# tiktoken's own loader may download: at most this long at start-up, then the estimate.
DOWNLOAD_WAIT_S = 10.0

# The last resort's bytes per token. Against o200k_base (docs/ratelimits.md's prompt set) real
# text runs from 2.4 (JSON) through 3 (code), ~5 (English, French, German) to 8-9 (Russian,
# Hindi) bytes a token: 3 errs high for most text and ~20% low for JSON.
ESTIMATE_BYTES_PER_TOKEN = 3.0

# Cookbook framing for gpt-4o.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
FUNC_INIT, PROP_INIT, PROP_KEY, ENUM_INIT, ENUM_ITEM, FUNC_END = 7, 3, 3, -3, 3, 12
# An image's tokens depend on its size, unknown without decoding it: a 512 px tile at high
# detail (OpenAI: 85 base + 170 a tile) for high/auto, 85 for low.
IMAGE_TOKENS = {"low": 85}
IMAGE_TOKENS_DEFAULT = 255

# Text above this many characters is counted in a worker thread (tiktoken releases the GIL)
# so a 30 MB body cannot stall the event loop.
INLINE_CHARS = 64 * 1024


class TokenCounter:
    """Counts text in o200k tokens; `exact` is False when it only estimates."""

    def __init__(self, encode: Callable[[str], list[int]] | None, source: str):
        self._encode = encode
        self.source = source

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def text(self, text: str) -> int:
        if not text:
            return 0
        if self._encode is None:
            return math.ceil(len(text.encode("utf-8", "surrogatepass")) / ESTIMATE_BYTES_PER_TOKEN)
        return len(self._encode(text))

    def request(self, chat: ChatRequest) -> int:
        """The input tokens of a request, as gpt-4o's `usage.prompt_tokens` counts them."""
        return sum(self.text(t) for t in _texts(chat)) + _fixed(chat)

    async def request_async(self, chat: ChatRequest) -> int:
        """`request`, off the event loop when the request is large."""
        texts = list(_texts(chat))
        if sum(map(len, texts)) <= INLINE_CHARS:
            return sum(map(self.text, texts)) + _fixed(chat)
        counted = await asyncio.to_thread(lambda: sum(map(self.text, texts)))
        return counted + _fixed(chat)


def _texts(chat: ChatRequest):
    """Every piece of text the model reads, each encoded on its own as the cookbook does."""
    for message in chat.messages:
        yield str(message.role)
        if message.name:
            yield message.name
        yield from _message_texts(message)
    for tool in chat.tools:
        yield from _tool_texts(tool)


def _message_texts(message: Message):
    for part in message.content:
        if isinstance(part, TextPart):
            yield part.text
    for call in message.tool_calls:
        yield call.name
        yield call.arguments
    if message.tool_call_id:
        yield message.tool_call_id


def _tool_texts(tool: Tool):
    yield f"{tool.name}:{(tool.description or '').removesuffix('.')}"
    properties = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
    if not isinstance(properties, dict):
        return
    for key, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        description = str(spec.get("description", "")).removesuffix(".")
        yield f"{key}:{spec.get('type', '')}:{description}"
        enum = spec.get("enum")
        if isinstance(enum, list):
            for item in enum:
                yield item if isinstance(item, str) else json.dumps(item)


def _fixed(chat: ChatRequest) -> int:
    """The framing tokens: per message, per name, per image, per tool."""
    total = REPLY_PRIMING
    for message in chat.messages:
        total += TOKENS_PER_MESSAGE + (TOKENS_PER_NAME if message.name else 0)
        for part in message.content:
            if isinstance(part, ImagePart):
                total += IMAGE_TOKENS.get(part.detail or "", IMAGE_TOKENS_DEFAULT)
    if chat.tools:
        total += FUNC_END
        for tool in chat.tools:
            total += FUNC_INIT
            properties = (
                tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
            )
            if isinstance(properties, dict) and properties:
                total += PROP_INIT
                for spec in properties.values():
                    total += PROP_KEY
                    enum = spec.get("enum") if isinstance(spec, dict) else None
                    if isinstance(enum, list):
                        total += ENUM_INIT + ENUM_ITEM * len(enum)
    return total


# --- the encoder: loaded once per process --------------------------------------------------

# A streamed answer's text is counted in pieces of about this many characters: memory
# stays at one piece however long the stream, and a token cut between two pieces counts
# at most once more.
TALLY_PIECE_CHARS = 4096


class StreamTally:
    """The tokens of a streamed answer's text (tool call arguments included), counted as
    the stream goes: the output debit of a budget when the upstream reports no usage."""

    __slots__ = ("_pending", "_size", "_tokens")

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._size = 0
        self._tokens = 0

    def feed(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= TALLY_PIECE_CHARS:
            self._count()

    def total(self) -> int:
        self._count()
        return self._tokens

    def _count(self) -> None:
        if self._pending:
            self._tokens += counter().text("".join(self._pending))
            self._pending.clear()
            self._size = 0


_lock = threading.Lock()
_counter: TokenCounter | None = None


def counter() -> TokenCounter:
    """The process's counter, loaded at the first call (start-up calls it: ~0.5 s)."""
    global _counter
    if _counter is None:
        with _lock:
            if _counter is None:
                _counter = load_counter()
    return _counter


def load_counter() -> TokenCounter:
    try:
        ranks = packaged_ranks()
    except RanksUnavailable as exc:
        log.info("o200k_base ranks: %s; trying tiktoken's own loader", exc)
    else:
        import tiktoken

        encoding = tiktoken.Encoding(
            ENCODING, pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens=O200K_SPECIAL
        )
        return TokenCounter(encoding.encode_ordinary, f"tiktoken {ENCODING} (quicktok-v1 ranks)")
    encoding = _tiktoken_own()
    if encoding is not None:
        return TokenCounter(encoding.encode_ordinary, f"tiktoken {ENCODING}")
    log.warning(
        "rate limits count tokens by an estimate (UTF-8 bytes / %g): the o200k_base encoding "
        "is not available offline; install quicktok-v1 for exact counts",
        ESTIMATE_BYTES_PER_TOKEN,
    )
    return TokenCounter(None, "estimate")


class RanksUnavailable(Exception):
    pass


def packaged_ranks(path: Path | None = None) -> dict[bytes, int]:
    """o200k_base's ranks from the package's file, verified as tiktoken verifies its own."""
    if path is None:
        spec = importlib.util.find_spec(RANKS_PACKAGE)  # finds it without importing it
        if spec is None or not spec.submodule_search_locations:
            raise RanksUnavailable(f"the {RANKS_PACKAGE} package is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / RANKS_FILE
    try:
        raw = path.read_bytes()
        ranks = _parse_vocab(raw)
    except (OSError, struct.error, ValueError) as exc:
        raise RanksUnavailable(f"{path.name}: {exc}") from None
    if tiktoken_file_sha256(ranks) != O200K_SHA256:
        raise RanksUnavailable(f"{path.name} is not o200k_base (its SHA-256 differs)")
    return ranks


def _parse_vocab(raw: bytes) -> dict[bytes, int]:
    """quicktok's format: u32 count, then per token u16 length, the bytes, u32 rank."""
    (count,) = struct.unpack_from("<I", raw, 0)
    offset, ranks = 4, {}
    unpack_len, unpack_rank = struct.Struct("<H").unpack_from, struct.Struct("<I").unpack_from
    for _ in range(count):
        (length,) = unpack_len(raw, offset)
        offset += 2
        token = raw[offset : offset + length]
        offset += length
        (ranks[token],) = unpack_rank(raw, offset)
        offset += 4
    if offset != len(raw):
        raise ValueError("trailing bytes")
    return ranks


def tiktoken_file_sha256(ranks: dict[bytes, int]) -> str:
    """The SHA-256 of the .tiktoken file these ranks make (base64 token, rank; by rank)."""
    digest = hashlib.sha256()
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        digest.update(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    return digest.hexdigest()


def _tiktoken_own():
    """tiktoken.get_encoding: its cache, else its download (which has no timeout of its
    own: it runs on a daemon thread this waits on for a bounded time)."""
    try:
        import tiktoken
    except ImportError:
        return None
    found: list = []

    def load() -> None:
        try:
            found.append(tiktoken.get_encoding(ENCODING))
        except Exception as exc:  # no network, a proxy's error page, a bad hash
            log.info("tiktoken could not load %s: %s", ENCODING, exc)

    thread = threading.Thread(target=load, name="plano-tiktoken-load", daemon=True)
    thread.start()
    thread.join(DOWNLOAD_WAIT_S)
    return found[0] if found else None
