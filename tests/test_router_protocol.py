"""The router's wire-independent rules: prompts, truncation, answers, routes, ranking, caches."""

from __future__ import annotations

import json

import pytest

from proxy.canonical import Message, TextPart, ToolCall
from proxy.routing.affinity import AffinityStore, DecisionCache
from proxy.routing.conversation import (
    MAX_ROUTING_TURNS,
    TRIM_MARKER,
    cache_key,
    trim_middle,
    truncate,
    turns_from_messages,
)
from proxy.routing.latency import LatencyTracker
from proxy.routing.prompts import (
    ARCH_ROUTER_PROMPT,
    ORCHESTRATOR_PROMPT,
    PromptStyle,
    RouterAnswerError,
    build_prompt,
    parse_answer,
    prompt_chars,
    style_for,
)
from proxy.routing.routes import (
    MAX_BODY_ROUTES,
    Route,
    RouteSpecError,
    route_key,
    routes_from_body,
    strip_routing_keys,
)
from proxy.routing.selection import rank_models

ROUTES = (
    Route("code_generation", "Generating new code snippets", ("openai/gpt-4o",)),
    Route("bug_fixing", "Finding and fixing bugs in existing code", ("openai/gpt-4o-mini",)),
)


def _msg(role: str, text: str) -> Message:
    return Message(role=role, content=[TextPart(text)] if text else [])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- prompts


def test_arch_router_prompt_lists_routes_and_conversation_as_compact_json():
    turns = [("user", "write a parser"), ("assistant", "sure"), ("user", "in Rust, naïvement")]
    prompt = build_prompt(PromptStyle.ARCH_ROUTER, ROUTES, turns)
    routes_json = (
        '[{"name":"code_generation","description":"Generating new code snippets"},'
        '{"name":"bug_fixing","description":"Finding and fixing bugs in existing code"}]'
    )
    conversation_json = (
        '[{"role":"user","content":"write a parser"},{"role":"assistant","content":"sure"},'
        '{"role":"user","content":"in Rust, naïvement"}]'
    )
    assert prompt == ARCH_ROUTER_PROMPT.replace("{routes}", routes_json).replace(
        "{conversation}", conversation_json
    )
    assert f"<routes>\n{routes_json}\n</routes>" in prompt
    assert f"<conversation>\n{conversation_json}\n</conversation>" in prompt
    assert prompt.startswith("\nYou are a helpful assistant designed to find the best suited")
    assert prompt.endswith('{"route": "route_name"}\n')
    assert 'response with other route {"route": "other"}' in prompt


def test_orchestrator_prompt_lists_one_spaced_route_per_line():
    turns = [("user", "fix this crash")]
    prompt = build_prompt(PromptStyle.ORCHESTRATOR, ROUTES, turns)
    routes_lines = (
        '{"name": "code_generation", "description": "Generating new code snippets"}\n'
        '{"name": "bug_fixing", "description": "Finding and fixing bugs in existing code"}'
    )
    assert f"<routes>\n{routes_lines}\n</routes>" in prompt
    conversation = prompt.split("<conversation>\n")[1].split("\n</conversation>")[0]
    assert conversation == json.dumps([{"role": "user", "content": "fix this crash"}], indent=4)
    assert json.loads(conversation) == [{"role": "user", "content": "fix this crash"}]
    assert prompt.startswith("\nYou are a helpful assistant that selects the most suitable")
    assert '{"route": ["route_name_1", "route_name_2", "..."]}' in prompt
    assert "{routes}" not in prompt
    assert "{conversation}" not in prompt


def test_placeholders_inside_routes_or_messages_stay_text():
    routes = (Route("odd", "matches {conversation} literally"),)
    turns = [("user", "what does {routes} mean?")]
    for style in PromptStyle:
        prompt = build_prompt(style, routes, turns)
        assert "matches {conversation} literally" in prompt
        assert "what does {routes} mean?" in prompt
        assert prompt.count("<routes>\n") == 1
        assert prompt.count('"role"') == 1  # the conversation appears exactly once


def test_prompt_chars_is_the_template_length():
    assert prompt_chars(PromptStyle.ARCH_ROUTER) == len(ARCH_ROUTER_PROMPT)
    assert prompt_chars(PromptStyle.ORCHESTRATOR) == len(ORCHESTRATOR_PROMPT)


@pytest.mark.parametrize(
    ("model", "style"),
    [
        ("hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M", PromptStyle.ARCH_ROUTER),
        ("katanemo/Arch-Router-1.5B", PromptStyle.ARCH_ROUTER),
        ("Arch-Router", PromptStyle.ARCH_ROUTER),
        ("katanemo/Plano-Orchestrator-4B", PromptStyle.ORCHESTRATOR),
        ("hf.co/katanemo/plano-orchestrator-30b-a3b.gguf:Q4_K_M", PromptStyle.ORCHESTRATOR),
        ("qwen2.5:1.5b", PromptStyle.ARCH_ROUTER),
    ],
)
def test_style_for_model_name(model, style):
    assert style_for(model) is style


# --------------------------------------------------------------------------- conversation


def test_turns_drop_system_developer_tool_and_empty_messages():
    messages = [
        _msg("system", "you are helpful"),
        _msg("developer", "be brief"),
        _msg("user", "look up the weather"),
        Message(
            role="assistant", tool_calls=[ToolCall("c1", "weather", '{"city": "Oslo"}')]
        ),  # no text: a pure tool call
        Message(role="tool", content=[TextPart("12C")], tool_call_id="c1"),
        _msg("assistant", "It is 12C in Oslo."),
        _msg("user", "   "),
        _msg("user", "and tomorrow?"),
    ]
    assert turns_from_messages(messages) == [
        ("user", "look up the weather"),
        ("assistant", "It is 12C in Oslo."),
        ("user", "and tomorrow?"),
    ]


def test_user_only_tail_ends_at_the_last_user_turn():
    messages = [_msg("user", "write a test"), _msg("assistant", "done"), _msg("assistant", "ok")]
    assert turns_from_messages(messages, user_only_tail=True) == [("user", "write a test")]
    assert turns_from_messages(messages)[-1] == ("assistant", "ok")
    assert turns_from_messages([_msg("assistant", "hi")], user_only_tail=True) == []


def test_truncate_keeps_the_last_sixteen_turns():
    turns = [("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(20)]
    kept = truncate(turns)
    assert len(kept) == MAX_ROUTING_TURNS == 16
    assert kept == turns[-16:]


def test_truncate_spends_the_budget_newest_first():
    # 400 bytes each: 100 tokens at length / 4.
    turns = [("user", "a" * 400), ("assistant", "b" * 400), ("user", "c" * 400)]
    assert truncate(turns, budget_tokens=300) == turns
    # 200 tokens: the two newest fit, the oldest (a user turn) gets nothing left.
    assert truncate(turns, budget_tokens=200) == turns[1:]
    # The prompt itself counts against the budget.
    assert truncate(turns, budget_tokens=300, prompt_chars=400) == turns[1:]


def test_truncate_stops_at_an_assistant_turn_that_does_not_fit():
    turns = [("user", "a" * 40), ("assistant", "b" * 800), ("user", "c" * 400)]
    assert truncate(turns, budget_tokens=150) == [("user", "c" * 400)]


def test_truncate_middle_trims_a_user_turn_that_does_not_fit():
    older = "head " + "x" * 2000 + " tail"
    turns = [("user", older), ("assistant", "b" * 400), ("user", "c" * 400)]
    kept = truncate(turns, budget_tokens=250)
    assert kept[1:] == turns[1:]
    role, text = kept[0]
    assert role == "user"
    assert len(text.encode()) <= 50 * 4  # what was left of the budget
    assert text.startswith("head ")
    assert text.endswith(" tail")
    assert TRIM_MARKER in text


def test_truncate_trims_the_newest_turn_when_nothing_fits():
    turns = [("user", "q" * 10_000)]
    kept = truncate(turns, budget_tokens=100)
    assert len(kept) == 1
    assert kept[0][0] == "user"
    assert len(kept[0][1].encode()) <= 400
    assert TRIM_MARKER in kept[0][1]
    # The prompt alone already spends the budget: the newest turn is still routed on.
    kept = truncate([("assistant", "a" * 800)], budget_tokens=10, prompt_chars=4000)
    assert kept
    assert kept[0][0] == "assistant"
    assert len(kept[0][1].encode()) <= 40


def test_trim_middle_splits_sixty_forty_on_character_boundaries():
    text = "é" * 1000  # 2 bytes each
    trimmed = trim_middle(text, 102)  # 99 bytes available: 59 head, 40 tail
    assert trimmed == "é" * 29 + TRIM_MARKER + "é" * 20  # half characters are dropped
    assert len(trimmed.encode()) <= 102
    assert trim_middle("short", 100) == "short"
    ascii_trimmed = trim_middle("H" * 60 + "T" * 60, 53)  # 50 available: 30 head, 20 tail
    assert ascii_trimmed == "H" * 30 + TRIM_MARKER + "T" * 20


def test_trim_middle_with_emoji_never_yields_broken_utf8():
    text = "🙂" * 100 + "end"
    for limit in range(1, 60):
        trimmed = trim_middle(text, limit)
        assert len(trimmed.encode()) <= limit
        trimmed.encode().decode()  # valid UTF-8 by construction of str; must not raise


def test_cache_key_normalizes_case_and_whitespace_of_the_tail():
    a = [
        ("user", "old"),
        ("user", "x"),
        ("assistant", "y"),
        ("user", "z"),
        ("user", "Fix  THE\nbug"),
    ]
    b = [
        ("user", "other"),
        ("user", "x"),
        ("assistant", "y"),
        ("user", "z"),
        ("user", "fix the bug"),
    ]
    assert cache_key(a) == cache_key(b)  # only the last four turns count, normalized
    assert cache_key(a) != cache_key([*b[:-1], ("user", "fix the bugs")])
    assert cache_key(a) != cache_key([*b[:-1], ("assistant", "fix the bug")])
    assert len(cache_key([("user", "x" * 1_000_000)])) == 16  # a digest, however long
    assert cache_key([("user", "fix the bug")]) != cache_key([("assistant", "fix the bug")])


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"route": "bug_fixing"}', ["bug_fixing"]),
        ('```json\n{"route": "bug_fixing"}\n```', ["bug_fixing"]),
        ('```\n{"route": "bug_fixing"}\n```', ["bug_fixing"]),
        ("{'route': 'bug_fixing'}", ["bug_fixing"]),
        ('{"route": "other"}', []),
        ('{"route": "Other"}', []),
        ('{"route": []}', []),
        ('{"route": null}', []),
        ('{"route": ["bug_fixing", "code_generation"]}', ["bug_fixing", "code_generation"]),
        ('{"route": ["other", "bug_fixing"]}', ["bug_fixing"]),
        ('{"route": "  bug_fixing \\n"}', ["bug_fixing"]),
        ('{"route": [" code_generation "]}', ["code_generation"]),
        ('The best route is {"route": "bug_fixing"}', ["bug_fixing"]),
        ("", []),
    ],
)
def test_parse_answer(text, names):
    assert parse_answer(text) == names


@pytest.mark.parametrize(
    "text",
    ["I think it is bug_fixing", '{"route": "bug_fixing"', "{not json at all}", '{"name": "x"}'],
)
def test_parse_answer_rejects_junk(text):
    with pytest.raises(RouterAnswerError):
        parse_answer(text)


# --------------------------------------------------------------------------- routes from a body


def test_routes_from_body_reads_upstream_preferences():
    body = {
        "model": "x",
        "routing_preferences": [
            {
                "name": " code ",
                "description": "writing code",
                "models": ["openai/gpt-4o", "anthropic/claude-sonnet-4"],
                "selection_policy": {"prefer": "cheapest"},
                "examples": ["write a function"],
            },
            {"name": "chat", "description": "small talk", "models": ["openai/gpt-4o-mini"]},
        ],
    }
    assert routes_from_body(body) == (
        Route(
            "code",
            "writing code",
            ("openai/gpt-4o", "anthropic/claude-sonnet-4"),
            "cheapest",
            ("write a function",),
        ),
        Route("chat", "small talk", ("openai/gpt-4o-mini",), "none", ()),
    )


def test_routes_from_body_reads_policy_lists_under_either_key():
    policy = [
        {
            "model": "openai/gpt-4o",
            "routing_preferences": [
                {"name": "code", "description": "writing code"},
                {"name": "review", "description": "reviewing code"},
            ],
        },
        {
            "model": "openai/gpt-4o-mini",
            "orchestration_preferences": [{"name": "chat", "description": "small talk"}],
        },
    ]
    expected = (
        Route("code", "writing code", ("openai/gpt-4o",)),
        Route("review", "reviewing code", ("openai/gpt-4o",)),
        Route("chat", "small talk", ("openai/gpt-4o-mini",)),
    )
    assert routes_from_body({"routing_policy": policy}) == expected
    assert routes_from_body({"routing_preferences": policy}) == expected


def test_routes_from_body_without_routes():
    assert routes_from_body({"model": "x", "messages": []}) is None
    assert routes_from_body({"routing_preferences": None}) is None


def test_strip_routing_keys():
    body = {"model": "m", "routing_preferences": [], "routing_policy": [], "stream": True}
    assert strip_routing_keys(body) == {"model": "m", "stream": True}
    plain = {"model": "m"}
    assert strip_routing_keys(plain) is plain


def _pref(**overrides) -> dict:
    return {"name": "code", "description": "writing code", "models": ["m"], **overrides}


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"routing_preferences": []}, "'routing_preferences' must be a non-empty list", None),
        ({"routing_preferences": {"a": 1}}, "must be a non-empty list of routes", None),
        ({"routing_policy": "code"}, "'routing_policy' must be a non-empty list", None),
        (
            {"routing_preferences": [_pref(name=f"r{i}") for i in range(MAX_BODY_ROUTES + 1)]},
            f"more than {MAX_BODY_ROUTES} entries",
            None,
        ),
        ({"routing_preferences": ["code"]}, "'routing_preferences[0]' must be an object", None),
        ({"routing_preferences": [_pref(name="")]}, "[0].name' must be a non-empty string", None),
        ({"routing_preferences": [_pref(name="  ")]}, "[0].name' must be a non-empty", None),
        ({"routing_preferences": [_pref(name=3)]}, "[0].name' must be a non-empty", None),
        (
            {"routing_preferences": [_pref(), {"name": "x", "models": ["m"]}]},
            "'routing_preferences[1].description' must be a non-empty string",
            "routing_preferences[1]",
        ),
        ({"routing_preferences": [_pref(models=[])]}, "[0].models' must be a non-empty list", None),
        ({"routing_preferences": [_pref(models="m")]}, "[0].models' must be a non-empty", None),
        ({"routing_preferences": [_pref(models=[1])]}, "[0].models' must be a non-empty", None),
        (
            {"routing_preferences": [{"name": "code", "description": "d"}]},
            "[0].models' must be a non-empty list",
            None,
        ),
        (
            {"routing_preferences": [_pref(selection_policy={"prefer": "random"})]},
            "prefer' must be one of none, cheapest, fastest",
            None,
        ),
        ({"routing_preferences": [_pref(examples="x")]}, "examples' must be a list", None),
        ({"routing_preferences": [_pref(examples=[1])]}, "examples' must be a list", None),
        (
            {"routing_preferences": [_pref(), _pref()]},
            "route 'code' is given more than once",
            "routing_preferences",
        ),
        (
            {"routing_policy": [{"model": "", "routing_preferences": [{"name": "a"}]}]},
            "'routing_policy[0].model' must be a model name",
            "routing_policy[0]",
        ),
        (
            {"routing_policy": [{"model": 7, "routing_preferences": []}]},
            "'routing_policy[0].model' must be a model name",
            None,
        ),
        (
            {"routing_policy": [{"model": "m", "routing_preferences": []}]},
            "'routing_policy[0].routing_preferences' must be a non-empty list",
            None,
        ),
        (
            {"routing_policy": [{"model": "m", "routing_preferences": "code"}]},
            "must be a non-empty list",
            None,
        ),
        (
            {"routing_policy": [{"model": "m", "routing_preferences": ["code"]}]},
            "'routing_policy[0].routing_preferences[0]' must be an object",
            "routing_policy[0].routing_preferences[0]",
        ),
        (
            {"routing_policy": [{"model": "m", "routing_preferences": [{"name": "a"}]}]},
            "routing_preferences[0].description' must be a non-empty string",
            None,
        ),
        (
            {
                "routing_policy": [
                    {"model": "a", "routing_preferences": [{"name": "x", "description": "d"}]},
                    {"model": "b", "routing_preferences": [{"name": "x", "description": "e"}]},
                ]
            },
            "route 'x' is given more than once",
            "routing_policy",
        ),
    ],
)
def test_routes_from_body_errors(body, message, param):
    with pytest.raises(RouteSpecError) as caught:
        routes_from_body(body)
    assert message in caught.value.message
    assert str(caught.value) == caught.value.message
    if param is not None:
        assert caught.value.param == param
    else:
        assert caught.value.param.startswith(next(iter(body)))


def test_route_key_covers_descriptions_models_and_policy():
    # A cached decision carries its route's models: a set with other models or another
    # policy is another key, or a request would get models its routes never named.
    a = (Route("code", "writing code", ("m1",)),)
    assert route_key(a) == route_key((Route("code", "writing code", ("m1",)),))
    assert route_key(a) != route_key((Route("code", "writing code", ("m2",)),))
    assert route_key(a) != route_key((Route("code", "writing code", ("m1",), "cheapest"),))
    assert route_key(a) != route_key((Route("code", "reviewing code", ("m1",)),))


# --------------------------------------------------------------------------- selection


def test_rank_cheapest_uses_the_price_table():
    models = [
        "anthropic/claude-sonnet-4",
        "mystery/unpriced-a",
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "mystery/unpriced-b",
        "openai/gpt-4o",
    ]
    assert rank_models(models, "cheapest") == [
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4",
        "mystery/unpriced-a",  # unknown prices last, in the written order
        "mystery/unpriced-b",
    ]
    assert rank_models(["openai/gpt-4o", "ollama/qwen3"], "cheapest") == [
        "ollama/qwen3",
        "openai/gpt-4o",
    ]


def test_rank_fastest_uses_measured_latency_and_tries_unmeasured_first():
    latencies = LatencyTracker()
    latencies.observe("slow", 2.0)
    latencies.observe("quick", 0.5)
    assert rank_models(["slow", "quick", "new"], "fastest", latencies) == ["new", "quick", "slow"]
    # A model that got slower moves back, by an exponentially weighted mean.
    for _ in range(20):
        latencies.observe("quick", 5.0)
    assert rank_models(["slow", "quick"], "fastest", latencies) == ["slow", "quick"]


def test_rank_none_or_without_latencies_keeps_the_written_order():
    assert rank_models(["b", "a", "b"], "none") == ["b", "a"]
    assert rank_models(["b", "a"], "fastest") == ["b", "a"]


def test_latency_tracker_weighs_the_newest_observation():
    latencies = LatencyTracker()
    assert latencies.expected_seconds("m") == 0.0
    latencies.observe("m", 1.0)
    assert latencies.expected_seconds("m") == 1.0
    latencies.observe("m", 2.0)
    assert latencies.expected_seconds("m") == pytest.approx(1.2)
    assert latencies.snapshot() == {"m": pytest.approx(1.2)}


# --------------------------------------------------------------------------- affinity and LRU


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_affinity_pins_until_the_ttl_runs_out():
    clock = Clock()
    store: AffinityStore[str] = AffinityStore(ttl_s=60, max_entries=10, clock=clock)
    store.pin("s1", "code")
    clock.now += 59.9
    assert store.get("s1") == "code"
    clock.now += 0.1
    assert store.get("s1") is None
    assert len(store) == 0  # an expired entry is gone, not just hidden
    assert store.get("never") is None


def test_affinity_repin_extends_the_ttl():
    clock = Clock()
    store: AffinityStore[str] = AffinityStore(ttl_s=60, max_entries=10, clock=clock)
    store.pin("s1", "code")
    clock.now += 50
    store.pin("s1", "chat")
    clock.now += 50
    assert store.get("s1") == "chat"


def test_affinity_evicts_the_oldest_pin_beyond_the_cap():
    store: AffinityStore[str] = AffinityStore(ttl_s=60, max_entries=2, clock=Clock())
    store.pin("a", "1")
    store.pin("b", "2")
    store.pin("a", "1b")  # re-pinned: now the newest
    store.pin("c", "3")
    assert len(store) == 2
    assert store.get("b") is None
    assert store.get("a") == "1b"
    assert store.get("c") == "3"


def test_decision_cache_is_an_lru_with_counters():
    cache: DecisionCache[str] = DecisionCache(2)
    cache.put("k1", "v1")
    cache.put("k2", "v2")
    assert cache.get("k1") == "v1"  # k1 is now the most recent
    cache.put("k3", "v3")
    assert cache.get("k2") is None
    assert cache.get("k1") == "v1"
    assert cache.get("k3") == "v3"
    assert (cache.hits, cache.misses) == (3, 1)
    assert len(cache) == 2


def test_decision_cache_of_size_zero_keeps_nothing():
    cache: DecisionCache[str] = DecisionCache(0)
    cache.put("k", "v")
    assert cache.get("k") is None
    assert len(cache) == 0
