"""Client keys (`listeners[].auth`): the official SDKs with the right, a wrong and no key;
the key kept out of logs, spans, the SQLite trace store, error messages and every upstream
request; its id on the traces and the access log."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import anthropic
import openai
import pytest
from agents_harness import agent_config as agents_config
from agents_harness import agent_url, route, stage
from fakes.providers import FakeProvider, openai_app, text_reply
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams
from raw_http import RawClient, error_message
from test_telemetry_e2e import stored

from proxy.config import Mode, check_text
from proxy.config.model import ClientKey, ListenerAuth
from proxy.telemetry.settings import WorkerSettings

OPENAI_KEY = "upstream-openai-key-5b1c0"
ANTHROPIC_KEY = "upstream-anthropic-key-93d7e"
BLUE_KEY = "plano-blue-0123456789abcdef-secret"  # from the environment
RED_KEY = "plano-red-fedcba9876543210-secret"  # written as its hash
RED_HASH = "sha256:" + hashlib.sha256(RED_KEY.encode()).hexdigest()


def keyed_config(ups, providers: str = ""):
    text = f"""\
        version: v0.4.0
        listeners:
          - name: llm
            type: model
            port: 12000
            auth:
              keys:
                - {{id: team-blue, key: $BLUE_KEY}}
                - {{id: team-red, key: "{RED_HASH}"}}
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{ups["openai"][1]}/v1", access_key: $OA,
             default: true}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: "{ups["anthropic"][1]}",
             access_key: $AN}}
        {providers}
        tracing: {{random_sampling: 100}}
        """
    env = {"OA": OPENAI_KEY, "AN": ANTHROPIC_KEY, "BLUE_KEY": BLUE_KEY}
    return config_from_yaml(text, env=env)


@pytest.fixture
def keyed(tmp_path):
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as ups:
        worker = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
        with ProxyThread(keyed_config(ups), telemetry=worker) as proxy:
            yield proxy, ups


def oa(proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)


def an(proxy, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0)


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


HI = [{"role": "user", "content": "hi"}]


def test_the_right_keys_pass_and_their_ids_are_traced_never_the_keys(
    keyed, tmp_path, caplog, capfd
):
    proxy, ups = keyed
    caplog.set_level(logging.DEBUG)
    chat = oa(proxy, BLUE_KEY).chat.completions.create(model="gpt-4o", messages=HI)
    assert chat.choices[0].message.content == "echo: hi"
    stream = oa(proxy, BLUE_KEY).chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    response = oa(proxy, RED_KEY).responses.create(model="gpt-4o", input="hello")
    assert response.output_text == "echo: hello"
    message = an(proxy, RED_KEY).messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=HI
    )
    assert message.content[0].text == "echo: hi"
    # The providers got their own keys, and never a client key in any header.
    upstream = ups["openai"][0].requests + ups["anthropic"][0].requests
    assert len(upstream) == 4
    assert ups["openai"][0].requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert ups["anthropic"][0].requests[0].headers["x-api-key"] == ANTHROPIC_KEY
    for seen in upstream:
        for value in seen.headers.values():
            assert BLUE_KEY not in value
            assert RED_KEY not in value

    stored(tmp_path, 4)
    store = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("traces"))
    assert b"plano.client_key_id" in store
    assert b"team-blue" in store
    assert b"team-red" in store
    for secret in (BLUE_KEY, RED_KEY, RED_HASH.removeprefix("sha256:")):
        assert secret.encode() not in store
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "key=team-blue" in logs
    assert "key=team-red" in logs
    for secret in (BLUE_KEY, RED_KEY):
        assert secret not in logs


def test_a_wrong_key_is_a_401_in_each_api_shape_that_never_echoes_it(keyed, caplog):
    proxy, ups = keyed
    caplog.set_level(logging.DEBUG)
    wrong = "plano-wrong-key-0000000000000000"
    with pytest.raises(openai.AuthenticationError) as chat:
        oa(proxy, wrong).chat.completions.create(model="gpt-4o", messages=HI)
    assert chat.value.status_code == 401
    assert chat.value.body["code"] == "invalid_api_key"
    assert chat.value.body["type"] == "authentication_error"
    assert "invalid client key" in chat.value.body["message"]
    with pytest.raises(openai.AuthenticationError) as responses:
        oa(proxy, wrong).responses.create(model="gpt-4o", input="x")
    with pytest.raises(anthropic.AuthenticationError) as messages:
        an(proxy, wrong).messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=HI)
    assert messages.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "invalid client key: the key sent is not one this listener accepts",
        },
    }
    # A key of another listener's shape, or a hash itself, is not a key either.
    with pytest.raises(openai.AuthenticationError):
        oa(proxy, RED_HASH).chat.completions.create(model="gpt-4o", messages=HI)
    for error in (chat.value, responses.value, messages.value):
        assert wrong not in str(error.body)
        assert wrong not in str(error)
    assert wrong not in caplog.text
    assert "401 client key unknown" in caplog.text
    assert ups["openai"][0].requests == []
    assert ups["anthropic"][0].requests == []


def test_a_missing_key_is_a_401_saying_where_to_put_it(keyed):
    proxy, _ = keyed
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    request = urllib.request.Request(
        f"{proxy.url}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
    payload = info.value.read().decode()
    assert "missing client key" in payload
    assert "Authorization: Bearer" in payload
    # Anthropic's shape on its path
    status, raw, _ = get(f"{proxy.url}/v1/messages")  # GET: the key is checked first
    assert status == 401
    assert b'"type":"error"' in raw


def test_models_need_a_key_and_healthz_does_not(keyed):
    proxy, _ = keyed
    assert get(f"{proxy.url}/healthz")[0] == 200
    assert get(f"{proxy.url}/v1/models")[0] == 401
    models = oa(proxy, BLUE_KEY).models.list()
    assert "openai/gpt-4o" in [m.id for m in models.data]
    assert get(f"{proxy.url}/routing/v1/chat/completions")[0] == 401


def test_passthrough_auth_gets_the_clients_provider_key_never_its_plano_key():
    """With auth on, the client sends its Plano key in one credential header and its own
    provider key in the other; a passthrough_auth provider gets the second only."""
    own_key = "client-own-openai-key-77aa"
    fake = FakeProvider(expected_key=own_key)
    with (
        ServerThread(openai_app(fake)) as own,
        openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as ups,
    ):
        providers = (
            f'  - {{model: byok/gpt-4o-mini, provider_interface: openai, base_url: "'
            f'{own.base_url}/v1", passthrough_auth: true}}'
        )
        with ProxyThread(keyed_config(ups, providers=providers)) as proxy:
            client = openai.OpenAI(
                base_url=f"{proxy.url}/v1",
                api_key=own_key,
                default_headers={"x-api-key": BLUE_KEY},
                max_retries=0,
            )
            answer = client.chat.completions.create(model="byok/gpt-4o-mini", messages=HI)
            assert answer.choices[0].message.content == "echo: hi"
            # The Plano key alone, in Authorization: the provider gets no credential at all
            # (its 401 reaches the client as the gateway's 502 naming the provider).
            with pytest.raises(openai.APIStatusError, match="HTTP 401"):
                oa(proxy, BLUE_KEY).chat.completions.create(model="byok/gpt-4o-mini", messages=HI)
    first, second = fake.requests
    assert first.headers["authorization"] == f"Bearer {own_key}"
    assert "x-api-key" not in first.headers
    assert "authorization" not in second.headers
    assert "x-api-key" not in second.headers


def test_agent_listeners_require_a_key_and_agents_never_see_it():
    with stage() as s:
        config = agents_config(s)
        keys = ListenerAuth((ClientKey("team-blue", hashlib.sha256(BLUE_KEY.encode()).digest()),))
        listeners = tuple(dataclasses.replace(lst, auth=keys) for lst in config.listeners)
        with ProxyThread(dataclasses.replace(config, listeners=listeners)) as proxy:
            url = agent_url(proxy)
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(
                    base_url=f"{url}/v1", api_key="nope", max_retries=0
                ).chat.completions.create(model="x", messages=HI)
            s.orchestrator.push(text_reply(route("weather_agent")))
            client = openai.OpenAI(
                base_url=f"{url}/v1",
                api_key=BLUE_KEY,
                default_headers={"x-team": "blue"},
                max_retries=0,
            )
            answer = client.chat.completions.create(model="x", messages=HI)
            assert answer.choices[0].message.content
        (call,) = s.agents["weather_agent"].requests
        assert call.headers["x-team"] == "blue"  # the client's other headers still go
        assert "authorization" not in call.headers
        for value in call.headers.values():
            assert BLUE_KEY not in value


# --- the config --------------------------------------------------------------------------


def _check(listener_auth: str, env: dict | None = None, mode: Mode = Mode.VALIDATE):
    text = textwrap.dedent(
        """\
        version: v0.4.0
        listeners:
          - name: llm
            type: model
            auth:
        {auth}
        model_providers:
          - {{model: openai/gpt-4o, access_key: $OA, default: true}}
        """
    ).format(auth=textwrap.indent(textwrap.dedent(listener_auth), " " * 6))
    return check_text(text, env={"OA": "x", **(env or {})}, mode=mode)


def test_a_literal_key_is_an_error_that_says_how_to_hash_it():
    result = _check("keys: [{id: a, key: plano-literal-0123456789}]")
    (problem,) = result.errors
    assert problem.code == "literal-client-key"
    assert "plano keys hash" in problem.hint
    assert "$ENV_VAR" in problem.hint
    assert "plano-literal-0123456789" not in problem.message


def test_env_and_hashed_keys_are_accepted_and_kept_as_digests_only():
    result = _check(
        f'keys: [{{id: a, key: $A_KEY}}, {{id: b, key: "{RED_HASH}"}}]',
        env={"A_KEY": BLUE_KEY},
        mode=Mode.SERVE,
    )
    assert result.ok, [p.message for p in result.errors]
    (a, b) = result.config.listeners[0].auth.keys
    assert (a.id, a.digest) == ("a", hashlib.sha256(BLUE_KEY.encode()).digest())
    assert b.digest.hex() == RED_HASH.removeprefix("sha256:")
    assert BLUE_KEY not in repr(result.config)


@pytest.mark.parametrize(
    ("auth", "env", "code"),
    [
        ("keys: [{id: a, key: $A_KEY}]", {"A_KEY": "short"}, "short-client-key"),
        (
            "keys: [{id: a, key: $A_KEY}, {id: a, key: $B_KEY}]",
            {"A_KEY": BLUE_KEY, "B_KEY": RED_KEY},
            "duplicate-client-key-id",
        ),
        (
            f'keys: [{{id: a, key: $A_KEY}}, {{id: b, key: "{RED_HASH}"}}]',
            {"A_KEY": RED_KEY},
            "duplicate-client-key",
        ),
        ("keys: []", {}, "schema"),
        ("keys: [{id: 'has space', key: $A_KEY}]", {"A_KEY": BLUE_KEY}, "schema"),
    ],
)
def test_key_mistakes_are_errors(auth, env, code):
    result = _check(auth, env)
    assert not result.ok
    codes = {p.code for p in result.errors}
    assert code in codes or (code == "schema" and codes), codes


def test_plano_keys_hash_reads_stdin_and_new_makes_a_usable_key(tmp_path):
    hashed = subprocess.run(
        [sys.executable, "-m", "plano_cli", "keys", "hash"],
        input=RED_KEY + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert hashed == RED_HASH
    made = subprocess.run(
        [sys.executable, "-m", "plano_cli", "keys", "new"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    key, its_hash = made
    assert its_hash == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert len(key) >= 40


OVERSIZED = "k" * 64 * 1024


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize(
    ("headers", "statuses", "says"),
    [
        ([("authorization", b"Bearer \xff\xfe\x80key")], {401}, "invalid client key"),
        ([("x-api-key", b"\xc3\x28" * 20)], {401}, "invalid client key"),
        # Two keys, one right: which caller is it? Neither is taken.
        (
            [("authorization", f"Bearer {BLUE_KEY}"), ("authorization", "Bearer wrong")],
            {401},
            "send one authorization header",
        ),
        (
            [("authorization", f"Bearer {BLUE_KEY}"), ("authorization", f"Bearer {RED_KEY}")],
            {401},
            "send one authorization header",
        ),
        # aiohttp refuses a header past its line limit before the key check runs.
        ([("authorization", "Bearer " + OVERSIZED)], {400, 401}, ""),
        ([("x-api-key", OVERSIZED)], {400, 401}, ""),
        ([("authorization", "Bearer ")], {401}, "client key"),
        ([("authorization", "Bearer")], {401}, "client key"),
    ],
    ids=[
        "non-utf8-bearer",
        "non-utf8-x-api-key",
        "two-authorizations-one-wrong",
        "two-authorizations-both-right",
        "oversized-bearer",
        "oversized-x-api-key",
        "bearer-empty",
        "bearer-alone",
    ],
)
def test_hostile_key_headers_get_a_clear_refusal_never_a_500(keyed, path, headers, statuses, says):
    proxy, ups = keyed
    raw = RawClient(int(proxy.url.rsplit(":", 1)[1]))
    body = b'{"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    reply = raw.request("POST", path, body, [*headers, ("content-type", "application/json")])
    raw.close()
    assert reply.status in statuses, reply
    message = error_message(path, reply)
    assert says in message
    assert BLUE_KEY not in message
    assert ups["openai"][0].requests == []
    assert ups["anthropic"][0].requests == []
