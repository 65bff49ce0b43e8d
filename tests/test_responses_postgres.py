"""Responses API state in a real PostgreSQL (tests/servers.py starts one per test): shared
by two gateways, through an outage under both failure modes, and the password kept out of
every log line and error."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import openai
import pytest
from fakes.providers import FakeProvider, openai_app
from fakes.server_thread import ServerThread
from gateway_process import plano_up
from proxy_harness import ProxyThread, config_from_yaml

from proxy.config.model import Secret, StateStorage
from proxy.state.conversations import StateStoreError
from proxy.state.postgres import PostgresConversationStore


@pytest.fixture
def upstream():
    fake = FakeProvider(expected_key="test-key")
    with ServerThread(openai_app(fake)) as server:
        yield fake, server.base_url


def gateway_config(base_url: str, state: str, env: dict):
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{base_url}/v1", access_key: $K, default: true}}
        {state}
        """,
        env={"K": "test-key", **env},
    )


def postgres_state(pg, on_unavailable: str = "fail_open", timeout: str = "2s") -> tuple[str, dict]:
    """The config lines and env: the password comes from $PGPW, as a deployment's would."""
    url = pg.url.replace(pg.password, "$PGPW")
    lines = (
        f"state_storage: {{type: postgres, connection_string: '{url}', "
        f"on_unavailable: {on_unavailable}, timeout: {timeout}}}"
    )
    return lines, {"PGPW": pg.password}


def client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)


def eventually(check, timeout_s: float = 20.0):
    """check() until it returns without raising; the last failure if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_conversation_started_on_one_gateway_continues_on_the_other(postgres_server, upstream):
    fake, base_url = upstream
    state, env = postgres_state(postgres_server)
    config = gateway_config(base_url, state, env)
    with ProxyThread(config) as one, ProxyThread(config) as two:
        first = client(one).responses.create(model="gpt-4o", input="my name is Ada")
        second = client(two).responses.create(
            model="gpt-4o", input="what is my name?", previous_response_id=first.id
        )
        third = client(one).responses.create(
            model="gpt-4o", input="and again", previous_response_id=second.id
        )
    assert third.output_text == "echo: and again"
    assert fake.last.body["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "echo: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
        {"role": "assistant", "content": "echo: what is my name?"},
        {"role": "user", "content": "and again"},
    ]
    # an id no gateway stored is the same 400 as with SQLite
    with ProxyThread(config) as three, pytest.raises(openai.BadRequestError) as info:
        client(three).responses.create(model="gpt-4o", input="x", previous_response_id="resp_no")
    assert "resp_no" in info.value.body["message"]


def test_streamed_answers_and_nul_characters_are_stored(postgres_server, upstream):
    fake, base_url = upstream
    state, env = postgres_state(postgres_server)
    with ProxyThread(gateway_config(base_url, state, env)) as proxy:
        with client(proxy).responses.stream(model="gpt-4o", input="nul \x00 here") as events:
            first = events.get_final_response()
        client(proxy).responses.create(model="gpt-4o", input="next", previous_response_id=first.id)
    assert fake.last.body["messages"][0] == {"role": "user", "content": "nul \x00 here"}


def test_outage_fail_open_serves_new_conversations_and_503s_continuations(
    postgres_server, upstream, caplog
):
    _, base_url = upstream
    state, env = postgres_state(postgres_server, "fail_open")
    caplog.set_level(logging.DEBUG)
    with ProxyThread(gateway_config(base_url, state, env)) as proxy:
        before = client(proxy).responses.create(model="gpt-4o", input="before")
        postgres_server.crash()

        # A new conversation is answered: the save fails, is logged, and the answer stands.
        during = client(proxy).responses.create(model="gpt-4o", input="during")
        assert during.output_text == "echo: during"
        # Continuing one needs its history: a 503 in OpenAI's shape, naming the store.
        with pytest.raises(openai.InternalServerError) as info:
            client(proxy).responses.create(
                model="gpt-4o", input="more", previous_response_id=before.id
            )
        assert info.value.status_code == 503
        assert info.value.response.headers["Retry-After"] == "1"
        assert "postgres" in info.value.body["message"]
        assert info.value.body["type"]  # OpenAI's error object: message, type, code

        postgres_server.start()
        # Back by itself: the conversation stored before the outage continues.
        after = eventually(
            lambda: client(proxy).responses.create(
                model="gpt-4o", input="after", previous_response_id=before.id
            )
        )
        assert after.output_text == "echo: after"
        # and what was answered during the outage was not stored
        with pytest.raises(openai.BadRequestError):
            client(proxy).responses.create(
                model="gpt-4o", input="x", previous_response_id=during.id
            )
    warnings = [r.getMessage() for r in caplog.records if r.name == "plano.state"]
    assert any("did not serve save" in line and "not stored" in line for line in warnings)
    assert any("did not serve load" in line for line in warnings)
    assert any("is back after" in line for line in warnings)
    assert postgres_server.password not in caplog.text


def test_outage_fail_closed_refuses_before_calling_the_model(postgres_server, upstream, caplog):
    fake, base_url = upstream
    state, env = postgres_state(postgres_server, "fail_closed")
    caplog.set_level(logging.DEBUG)
    with ProxyThread(gateway_config(base_url, state, env)) as proxy:
        client(proxy).responses.create(model="gpt-4o", input="before")
        postgres_server.crash()

        # The first request after the crash finds it out (its save fails; the answer stands),
        # then the database is marked down and stored requests get the 503 up front.
        def refused() -> None:
            try:
                client(proxy).responses.create(model="gpt-4o", input="refused")
            except openai.InternalServerError:
                return
            raise AssertionError("answered while the database is down")

        eventually(refused, timeout_s=10)
        sent = len(fake.requests)
        with pytest.raises(openai.InternalServerError) as info:
            client(proxy).responses.create(model="gpt-4o", input="refused again")
        assert info.value.status_code == 503
        assert "postgres" in info.value.body["message"]
        assert len(fake.requests) == sent  # the model was never called
        # A request that asks for nothing to be stored does not need the database.
        unstored = client(proxy).responses.create(model="gpt-4o", input="x", store=False)
        assert unstored.output_text == "echo: x"

        postgres_server.start()
        back = eventually(lambda: client(proxy).responses.create(model="gpt-4o", input="back"))
        follow = client(proxy).responses.create(
            model="gpt-4o", input="on", previous_response_id=back.id
        )
        assert follow.output_text == "echo: on"
    assert postgres_server.password not in caplog.text


def test_a_database_that_never_answers_costs_a_request_its_timeout_only(upstream):
    """A server that accepts connections and says nothing (a hung host): the request gets
    its 503 after the configured timeout, not libpq's or the pool's own waits."""
    _, base_url = upstream
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = silent.getsockname()[1]
    state = (
        f"state_storage: {{type: postgres, connection_string: "
        f"'postgresql://plano:$PGPW@127.0.0.1:{port}/plano', timeout: 300ms}}"
    )
    try:
        with ProxyThread(gateway_config(base_url, state, {"PGPW": "hunter2-secret"})) as proxy:
            started = time.monotonic()
            with pytest.raises(openai.InternalServerError) as info:
                client(proxy).responses.create(
                    model="gpt-4o", input="x", previous_response_id="resp_1"
                )
            waited = time.monotonic() - started
        assert info.value.status_code == 503
        assert "hunter2-secret" not in str(info.value.body)
        # Not a speed assertion: the bound is 300 ms; the pool's own wait would be 30 s.
        assert waited < 10
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        silent.close()


async def test_instances_starting_at_once_create_the_table_once(postgres_server):
    settings = StateStorage(type="postgres", connection_string=Secret(postgres_server.url))
    stores = [PostgresConversationStore(settings) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert all(store.up for store in stores)
        from proxy.canonical import Message, TextPart

        await stores[0].save("resp_a", None, "m", [Message("user", [TextPart("hi")])])
        loaded = await stores[5].load("resp_a")
        assert [m.content[0].text for m in loaded] == ["hi"]
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_an_unreadable_connection_string_is_refused_without_quoting_it():
    settings = StateStorage(
        type="postgres", connection_string=Secret("host=x password=hunter2 'unterminated")
    )
    with pytest.raises(StateStoreError) as info:
        PostgresConversationStore(settings)
    assert "hunter2" not in str(info.value)
    assert "connection string" in str(info.value)


def test_plano_up_never_logs_the_password(postgres_server, upstream, tmp_path, monkeypatch):
    """Two real `plano up` processes on one database; the database goes away and comes
    back mid-run; neither log holds the password."""
    _, base_url = upstream
    url = postgres_server.url.replace(postgres_server.password, "$PGPW")
    config = f"""\
version: v0.4.0
listeners: [{{name: m, type: model, port: {{port}}}}]
model_providers:
  - {{model: openai/gpt-4o, base_url: "{base_url}/v1", access_key: $K, default: true}}
state_storage: {{type: postgres, connection_string: '{url}'}}
tracing: {{random_sampling: 0}}
"""
    monkeypatch.setenv("K", "test-key")
    monkeypatch.setenv("PGPW", postgres_server.password)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with plano_up(tmp_path / "a", config) as one, plano_up(tmp_path / "b", config) as two:
        first = client(one).responses.create(model="gpt-4o", input="one")
        second = client(two).responses.create(
            model="gpt-4o", input="two", previous_response_id=first.id
        )
        postgres_server.crash()
        with pytest.raises(openai.InternalServerError):
            client(one).responses.create(model="gpt-4o", input="x", previous_response_id=second.id)
        postgres_server.start()
        eventually(
            lambda: client(two).responses.create(
                model="gpt-4o", input="three", previous_response_id=second.id
            )
        )
    for home in ("a", "b"):
        text = (tmp_path / home / "plano.log").read_text()
        assert postgres_server.password not in text
    assert "responses state: postgres at 127.0.0.1" in (tmp_path / "a" / "plano.log").read_text()


async def test_open_creates_the_schema_once(postgres_server):
    """open() probes the database; the schema is ensured by the first connection taken (the
    probe's), not a second time by open itself."""
    settings = StateStorage(type="postgres", connection_string=Secret(postgres_server.url))
    store = PostgresConversationStore(settings)
    ensured = []
    ensure = store._ensure_schema

    async def counted(conn):
        ensured.append(conn)
        await ensure(conn)

    store._ensure_schema = counted
    try:
        await store.open()
        assert store.up
        assert len(ensured) == 1
        from proxy.canonical import Message, TextPart

        await store.save("resp_once", None, "m", [Message("user", [TextPart("hi")])])
        assert await store.load("resp_once")
        assert len(ensured) == 1
    finally:
        await store.close()
