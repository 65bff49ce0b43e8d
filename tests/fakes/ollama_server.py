"""A stand-in Ollama server speaking Ollama's HTTP API, for router backend tests.

Only the endpoints a router needs, with the fields and status codes the real server sends:
`GET /api/version`, `/api/tags`, `/api/ps`; `POST /api/show`, `/api/pull` (NDJSON progress
when streaming, which is the server's default), `/api/generate` (an empty prompt loads the
model) and `/api/chat`. Like the real server, `stream` defaults to true when a body omits
it; the official client always sends it.

Tests drive it through a `FakeOllama` state object::

    state = FakeOllama(installed=[])
    with ServerThread(ollama_app(state)) as server:
        backend = OllamaBackend(host=server.base_url)
        ...
    assert state.last("/api/chat").body["options"] == {"temperature": 0}

Test-only: product code must never import this module.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

VERSION = "0.12.6"
NDJSON = "application/x-ndjson"
UNKNOWN_MANIFEST = "pull model manifest: file does not exist"
PULL_MIDWAY_ERROR = "max retries exceeded: unexpected EOF"
RUNNER_CRASHED = "llama runner process has terminated: exit status 2"

AnswerFn = Callable[[str, str], str]


class PullMode(enum.Enum):
    OK = "ok"
    FAIL_MIDWAY = "fail-midway"  # progress, then an `{"error": ...}` line, as on a dropped download
    DROP_MIDWAY = "drop-midway"  # progress, then the connection closes without a final line
    UNKNOWN = "unknown"  # the registry has no such model


@dataclass
class OllamaRequest:
    method: str
    path: str
    body: Any  # parsed JSON; None when empty or not JSON


@dataclass
class _Injected:
    status: int
    message: str


_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "the",
        "this",
        "to",
        "what",
        "with",
        "you",
        "your",
    }
)
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _block(prompt: str, tag: str) -> str:
    # The templates also name the tags in prose ("within <routes></routes>"): the block
    # itself is the one whose tags stand on their own lines.
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.DOTALL)
    return match.group(1) if match else ""


def prompt_routes(prompt: str) -> list[dict[str, str]]:
    """The routes listed in a router prompt: a JSON array, or one JSON object per line."""
    block = _block(prompt, "routes").strip()
    if not block:
        return []
    try:
        parsed = json.loads(block)
    except json.JSONDecodeError:
        return [json.loads(line) for line in block.splitlines() if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def prompt_conversation(prompt: str) -> list[dict[str, str]]:
    block = _block(prompt, "conversation").strip()
    return json.loads(block) if block else []


def wants_list(prompt: str) -> bool:
    """The orchestrator prompt asks for `{"route": [...]}`; Arch-Router's for one name."""
    return '{"route": ["' in prompt


def default_answer(prompt: str, model: str) -> str:
    """Pick the route sharing the most words with the last user message, in the asked format.

    Good enough to tell a right prompt from a wrong one: a prompt without the routes or the
    conversation in the expected blocks gets "no route".
    """
    routes = prompt_routes(prompt)
    users = [m.get("content", "") for m in prompt_conversation(prompt) if m.get("role") == "user"]
    asked = _words(users[-1]) if users else set()
    best, best_score = None, 0
    for route in routes:
        name = str(route.get("name", ""))
        score = len(
            asked
            & (
                _words(name.replace("_", " ").replace("-", " "))
                | _words(str(route.get("description", "")))
            )
        )
        if score > best_score:
            best, best_score = name, score
    if wants_list(prompt):
        return json.dumps({"route": [best] if best else []})
    return json.dumps({"route": best or "other"})


def canonical_name(model: str) -> str:
    """Ollama's name for a model: the tag defaults to `latest`."""
    last = model.rsplit("/", 1)[-1]
    return model if ":" in last else f"{model}:latest"


def closed_port_url() -> str:
    """A loopback URL nothing listens on: Ollama not running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class FakeOllama:
    """Shared between the server thread and the test.

    `installed`: models present at start (`name` or `name:tag`); a successful pull adds one.
    `answer(prompt, model)`: the assistant text for /api/chat and /api/generate.
    `delay_s`: how long /api/chat and a non-empty /api/generate think before answering.
    `pull_steps`: progress updates per layer.
    """

    installed: list[str] = field(default_factory=list)
    pull_mode: PullMode = PullMode.OK
    answer: AnswerFn = default_answer
    delay_s: float = 0.0
    pull_steps: int = 4
    requests: list[OllamaRequest] = field(default_factory=list)
    loaded: dict[str, float | None] = field(default_factory=dict)  # model -> expiry (epoch s)
    _injected: dict[str, deque[_Injected]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.installed = [canonical_name(m) for m in self.installed]

    def has(self, model: str) -> bool:
        return canonical_name(model) in self.installed

    def fail(self, path: str, status: int, message: str | None = None, times: int = 1) -> None:
        """The next `times` requests to `path` get `status` with Ollama's `{"error": ...}`."""
        text = message or (RUNNER_CRASHED if status >= 500 else "not found")
        queue = self._injected.setdefault(path, deque())
        queue.extend(_Injected(status, text) for _ in range(times))

    def to(self, path: str) -> list[OllamaRequest]:
        return [r for r in self.requests if r.path == path]

    def last(self, path: str) -> OllamaRequest:
        found = self.to(path)
        if not found:
            raise AssertionError(f"the fake Ollama received no request to {path}")
        return found[-1]

    def _take_injected(self, path: str) -> _Injected | None:
        queue = self._injected.get(path)
        if not queue:
            return None
        try:
            return queue.popleft()
        except IndexError:
            return None


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("/".join(parts).encode()).hexdigest()


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen2",
        "families": ["qwen2"],
        "parameter_size": "1.5B",
        "quantization_level": "Q4_K_M",
    }


_LAYER_SIZES = (986_046_176, 1_482, 11_357, 148)  # weights, template, license, params


def _layers(model: str) -> list[tuple[str, int]]:
    return [(_digest(model, str(i)), size) for i, size in enumerate(_LAYER_SIZES)]


def _size(model: str) -> int:
    return sum(size for _, size in _layers(model))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _not_found(model: str) -> web.Response:
    return _error(404, f"model '{model}' not found")


def _expiry(keep_alive: Any) -> float | None:
    """Ollama's keep_alive: a duration string, seconds as a number, negative for forever."""
    if keep_alive is None:
        return time.time() + 300
    if isinstance(keep_alive, int | float):
        return None if keep_alive < 0 else time.time() + keep_alive
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?", str(keep_alive).strip())
    if match is None:
        return time.time() + 300
    value = float(match.group(1))
    if value < 0:
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return time.time() + value * unit


def _expires_at(expiry: float | None) -> str:
    if expiry is None:  # what the real server reports for keep_alive -1
        return "2318-08-07T13:58:42.123456Z"
    moment = datetime.fromtimestamp(expiry, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _stream(body: Any) -> bool:
    return not (isinstance(body, dict) and body.get("stream") is False)


def _eval_count(text: str) -> int:
    return max(1, len(text.split()))


# --------------------------------------------------------------------------- app


def ollama_app(state: FakeOllama) -> web.Application:
    app = web.Application()

    async def record(request: web.Request) -> OllamaRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        recorded = OllamaRequest(request.method, request.path, body)
        state.requests.append(recorded)
        return recorded

    def model_of(body: Any) -> str:
        if not isinstance(body, dict):
            return ""
        return str(body.get("model") or body.get("name") or "")

    async def root(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(text="Ollama is running")

    async def version(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.json_response({"version": VERSION})

    async def tags(request: web.Request) -> web.StreamResponse:
        await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": _now(),
                "size": _size(name),
                "digest": _digest(name).removeprefix("sha256:"),
                "details": _details(),
            }
            for name in state.installed
        ]
        return web.json_response({"models": models})

    async def ps(request: web.Request) -> web.StreamResponse:
        await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        now = time.time()
        running = [
            {
                "name": name,
                "model": name,
                "size": _size(name),
                "digest": _digest(name).removeprefix("sha256:"),
                "details": _details(),
                "expires_at": _expires_at(expiry),
                "size_vram": 0,
                "context_length": 4096,
            }
            for name, expiry in state.loaded.items()
            if expiry is None or expiry > now
        ]
        return web.json_response({"models": running})

    async def show(request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        model = model_of(recorded.body)
        if not model:
            return _error(400, "model is required")
        if not state.has(model):
            return _not_found(model)
        return web.json_response(
            {
                "license": "Katanemo Labs Community License",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model}\n',
                "parameters": 'stop "<|im_start|>"\nstop "<|im_end|>"',
                "template": "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
                "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
                "details": _details(),
                "model_info": {
                    "general.architecture": "qwen2",
                    "general.parameter_count": 1_543_714_304,
                    "qwen2.context_length": 32768,
                },
                "capabilities": ["completion"],
                "modified_at": _now(),
            }
        )

    async def pull(request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        model = model_of(recorded.body)
        if not model:
            return _error(400, "model is required")
        updates, error = _pull_plan(state, model)
        if not _stream(recorded.body):
            # Non-streaming: the server waits for the outcome and answers once.
            if error is not None:
                return _error(500, error)
            if state.pull_mode is PullMode.DROP_MIDWAY:
                _drop(request)
                return web.Response(status=500)
            _install(state, model)
            return web.json_response({"status": "success"})
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        for update in updates:
            await response.write(json.dumps(update).encode() + b"\n")
            await asyncio.sleep(0)
        if error is not None:
            await response.write(json.dumps({"error": error}).encode() + b"\n")
        elif state.pull_mode is PullMode.DROP_MIDWAY:
            _drop(request)
            return response
        else:
            _install(state, model)
        await response.write_eof()
        return response

    async def generate(request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        body = recorded.body if isinstance(recorded.body, dict) else {}
        model = model_of(body)
        if not model:
            return _error(400, "model is required")
        if not state.has(model):
            return _not_found(model)
        was_loaded = canonical_name(model) in state.loaded
        expiry = _expiry(body.get("keep_alive"))
        base = {"model": model, "created_at": _now()}
        prompt = body.get("prompt")
        if not prompt:
            # An empty prompt only loads (or, with keep_alive 0, unloads) the model.
            if body.get("keep_alive") in (0, "0", "0s"):
                state.loaded.pop(canonical_name(model), None)
                reason = "unload"
            else:
                state.loaded[canonical_name(model)] = expiry
                reason = "load"
            return web.json_response({**base, "response": "", "done": True, "done_reason": reason})
        state.loaded[canonical_name(model)] = expiry
        await asyncio.sleep(state.delay_s)
        text = state.answer(str(prompt), model)
        final = {
            **base,
            "response": text if not _stream(body) else "",
            "done": True,
            "done_reason": "stop",
            **_timings(str(prompt), text, was_loaded),
        }
        if not _stream(body):
            return web.json_response(final)
        chunks = [{**base, "response": piece, "done": False} for piece in _pieces(text)]
        return await _ndjson(request, [*chunks, final])

    async def chat(request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        if (injected := state._take_injected(request.path)) is not None:
            return _error(injected.status, injected.message)
        body = recorded.body if isinstance(recorded.body, dict) else {}
        model = model_of(body)
        if not model:
            return _error(400, "model is required")
        if not state.has(model):
            return _not_found(model)
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _error(400, "messages must be a list")
        was_loaded = canonical_name(model) in state.loaded
        state.loaded[canonical_name(model)] = _expiry(body.get("keep_alive"))
        base = {"model": model, "created_at": _now()}
        if not messages:
            return web.json_response(
                {
                    **base,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "load",
                }
            )
        await asyncio.sleep(state.delay_s)
        prompt = next(
            (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        text = state.answer(prompt, model)
        timings = _timings("\n".join(str(m.get("content", "")) for m in messages), text, was_loaded)
        if not _stream(body):
            return web.json_response(
                {
                    **base,
                    "message": {"role": "assistant", "content": text},
                    "done_reason": "stop",
                    "done": True,
                    **timings,
                }
            )
        chunks = [
            {**base, "message": {"role": "assistant", "content": piece}, "done": False}
            for piece in _pieces(text)
        ]
        final = {
            **base,
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            **timings,
        }
        return await _ndjson(request, [*chunks, final])

    async def unknown(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=404, text="404 page not found")

    app.router.add_get("/", root)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/pull", pull)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/chat", chat)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app


def _pull_plan(state: FakeOllama, model: str) -> tuple[list[dict[str, Any]], str | None]:
    """The progress lines a pull sends, and the error that ends it, if any."""
    updates: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    if state.pull_mode is PullMode.UNKNOWN:
        return updates, UNKNOWN_MANIFEST
    layers = _layers(model)
    steps = max(1, state.pull_steps)
    for index, (digest, total) in enumerate(layers):
        short = digest.removeprefix("sha256:")[:12]
        for step in range(steps + 1):
            completed = total * step // steps
            updates.append(
                {
                    "status": f"pulling {short}",
                    "digest": digest,
                    "total": total,
                    "completed": completed,
                }
            )
            midway = index == 0 and step == steps // 2
            if midway and state.pull_mode is PullMode.FAIL_MIDWAY:
                return updates, PULL_MIDWAY_ERROR
            if midway and state.pull_mode is PullMode.DROP_MIDWAY:
                return updates, None
    updates += [
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    return updates, None


def _drop(request: web.Request) -> None:
    # No terminating chunk follows: the client sees an incomplete read, not a clean end.
    if request.transport is not None:
        request.transport.close()


def _install(state: FakeOllama, model: str) -> None:
    name = canonical_name(model)
    if name not in state.installed:
        state.installed.append(name)


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or [text]


def _timings(prompt: str, text: str, was_loaded: bool) -> dict[str, int]:
    load = 1_204_417 if was_loaded else 2_847_120_593
    return {
        "total_duration": load + 412_093_229,
        "load_duration": load,
        "prompt_eval_count": _eval_count(prompt),
        "prompt_eval_duration": 318_417_000,
        "eval_count": _eval_count(text),
        "eval_duration": 93_676_229,
    }


async def _ndjson(request: web.Request, lines: list[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    for line in lines:
        await response.write(json.dumps(line).encode() + b"\n")
    await response.write_eof()
    return response
