"""The agentic-signals analyzer on written conversations: each of the 25 types, clean
conversations that show none, the false positives it must avoid, scoring, odd input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.canonical import ChatResponse, Message, TextPart, ToolCall
from proxy.telemetry.signal_rules import GROUPS
from proxy.telemetry.signals import SignalReport, analyze

Msg = dict[str, Any]
_ids = iter(range(10_000))


def u(text: str) -> Msg:
    return {"role": "user", "content": text}


def a(text: str) -> Msg:
    return {"role": "assistant", "content": text}


def call(name: str, args: dict[str, Any], text: str = "") -> Msg:
    """An assistant message with one tool call (OpenAI shape: arguments as JSON text)."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }


def tool(text: str) -> Msg:
    return {"role": "tool", "tool_call_id": "call_x", "content": text}


def fail_then(result: str) -> list[Msg]:
    """A user asking for an order; the agent's lookup returns `result`."""
    return [
        u("What is the status of order 1234?"),
        call("lookup_order", {"order_id": "1234"}),
        tool(result),
    ]


NEUTRAL_TURNS = [
    "Let's plan the data pipeline for the analytics team.",
    "What storage format suits event logs?",
    "How should partitions be laid out by date?",
    "Which compression codec do you suggest for parquet?",
    "How do we handle late arriving events?",
    "What about schema evolution over time?",
    "How would backfills work for last year?",
    "Which orchestrator fits a small team?",
    "How do we monitor freshness of each table?",
    "What alerting thresholds make sense for lag?",
]


def dragging_conversation() -> list[Msg]:
    msgs: list[Msg] = []
    for i, text in enumerate(NEUTRAL_TURNS):
        msgs += [u(text), a(f"Here is a considered answer about topic number {i} in detail.")]
    return msgs


LONG_ANSWER = (
    "To reset your router hold the power button for ten seconds, wait for the lights to "
    "blink, then reconnect using the password printed on the label underneath."
)

# (type, messages, expected message index, analyze() keyword arguments)
CASES: list[tuple[str, list[Msg], int, dict[str, Any]]] = [
    (
        "correction",
        [
            u("Write a function that sorts a list of names"),
            a("def f(x): return sorted(x, reverse=True)"),
            u("That's wrong, I wanted ascending order."),
        ],
        2,
        {},
    ),
    (
        "rephrase",
        [
            u("How can I make my postgres query on the orders table run faster for big customers?"),
            a("Could you share the query plan?"),
            u("Put differently: how do I make the postgres orders query faster for big customers?"),
        ],
        2,
        {},
    ),
    (
        "clarification",
        [
            u("Deploy the app to production"),
            a("I've configured a blue-green rollout with a canary stage."),
            u("What do you mean by a canary stage?"),
        ],
        2,
        {},
    ),
    ("dragging", dragging_conversation(), 18, {}),
    (
        "repetition",
        [
            u("My router keeps dropping the connection, what should I do?"),
            a(LONG_ANSWER),
            u("I did that already and it still drops."),
            a(LONG_ANSWER),
        ],
        3,
        {},
    ),
    (
        "escalation",
        [u("I want to talk to a human agent about my refund.")],
        0,
        {},
    ),
    (
        "quit",
        [
            u("Convert this CSV to JSON"),
            a("Sure, please paste the CSV."),
            u("Forget it, I'll do it myself."),
        ],
        2,
        {},
    ),
    (
        "negative_stance",
        [
            u("Fix the login bug"),
            a("I changed the session timeout."),
            u("This is useless, the page is still broken."),
        ],
        2,
        {},
    ),
    (
        "gratitude",
        [u("What is the capital of France?"), a("Paris."), u("Thank you!")],
        2,
        {},
    ),
    (
        "confirmation",
        [
            u("Rename the column to created_at"),
            a("ALTER TABLE t RENAME COLUMN ts TO created_at;"),
            u("Yes, that's exactly what I needed."),
        ],
        2,
        {},
    ),
    (
        "success",
        [
            u("My build fails with a missing module"),
            a("Add the package to requirements.txt and reinstall."),
            u("I reinstalled and it works now."),
        ],
        2,
        {},
    ),
    (
        "invalid_args",
        fail_then("Error: invalid argument 'order_id': expected an integer"),
        2,
        {},
    ),
    ("bad_query", fail_then("sqlite3.OperationalError: no such table: orderz"), 2, {}),
    ("tool_not_found", fail_then("Error: unknown tool 'lookup_order'"), 2, {}),
    ("auth_misuse", fail_then('{"error": "403 Forbidden: token lacks scope orders:read"}'), 2, {}),
    ("state_error", fail_then("Error: session expired, open a new session first"), 2, {}),
    (
        "retry",
        [
            *fail_then("Error: order service returned 503"),
            call("lookup_order", {"order_id": "1234"}),
            tool("Error: order service returned 503"),
        ],
        3,
        {},
    ),
    (
        "parameter_drift",
        [
            u("Find the invoice for ACME"),
            call("search_invoices", {"customer": "ACME"}),
            tool("[]"),
            call("search_invoices", {"customer": "Acme Inc"}),
            tool("[]"),
            call("search_invoices", {"customer": "acme"}),
            tool("[]"),
        ],
        3,
        {},
    ),
    (
        "oscillation",
        [
            u("Make the tests pass"),
            call("edit_file", {"path": "a.py", "patch": "x = 1"}),
            tool("ok"),
            call("run_tests", {}),
            tool("1 failed"),
            call("edit_file", {"path": "a.py", "patch": "x = 1"}),
            tool("ok"),
            call("run_tests", {}),
            tool("1 failed"),
        ],
        7,
        {},
    ),
    ("api_error", [u("Summarise this page")], 1, {"status": 502, "error": "Bad Gateway"}),
    (
        "timeout",
        [u("Summarise this page")],
        1,
        {"status": 504, "error": "upstream request timed out after 60s"},
    ),
    ("rate_limit", [u("Summarise this page")], 1, {"status": 429}),
    (
        "network",
        [u("Summarise this page")],
        1,
        {"error": "Cannot connect to host api.example.com: Connection refused"},
    ),
    (
        "context_overflow",
        [u("Summarise this page")],
        1,
        {"status": 400, "error": "This model's maximum context length is 8192 tokens"},
    ),
]
BROKEN_CALL = ChatResponse(
    id="r1",
    model="m",
    tool_calls=[ToolCall(id="c1", name="get_weather", arguments='{"city": "Par')],
)
CASES.append(("malformed_response", [u("Weather in Paris?")], 1, {"response": BROKEN_CALL}))


def test_the_cases_cover_the_taxonomy() -> None:
    all_types = {t for types in GROUPS.values() for t in types}
    assert len(GROUPS) == 7
    # The issue says 26, but its list (and upstream's SignalType enum) has 25.
    assert len(all_types) == 25
    assert {case[0] for case in CASES} == all_types


@pytest.mark.parametrize(("type_", "messages", "index", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_each_type_is_detected(
    type_: str, messages: list[Msg], index: int, kwargs: dict[str, Any]
) -> None:
    kwargs = dict(kwargs)
    report = analyze(messages, kwargs.pop("response", None), **kwargs)
    hits = report.of_type(type_)
    assert hits, f"{type_} not found in {report.as_dict()}"
    assert [s.message_index for s in hits] == [index]
    assert 0 < hits[0].confidence <= 1
    assert hits[0].group in GROUPS
    assert type_ in GROUPS[hits[0].group]


@pytest.mark.parametrize(
    ("type_", "text"),
    [
        ("rate_limit", "Error 429: Too Many Requests, retry after 20s"),
        ("timeout", "Error: request timed out after 30 seconds"),
        ("network", "Error: connection reset by peer"),
        ("api_error", "HTTP 500 Internal Server Error"),
        ("context_overflow", "error: prompt is too long for the model's context window"),
        ("malformed_response", "Error: could not parse the upstream reply as JSON"),
    ],
)
def test_environment_causes_in_tool_results(type_: str, text: str) -> None:
    assert [s.message_index for s in analyze(fail_then(text)).of_type(type_)] == [2]


def test_a_rephrase_marker_without_overlap() -> None:
    report = analyze([u("Book me a table"), a("Which city?"), u("In other words, dinner for 2.")])
    assert [s.message_index for s in report.of_type("rephrase")] == [2]


# --- conversations with no negative signals -----------------------------------------

NEGATIVE_GROUPS = set(GROUPS) - {"satisfaction"}

CLEAN = {
    "coding_help": [
        u("How do I reverse a string in Python?"),
        a("Use slicing: `s[::-1]` returns a reversed copy."),
        u("And how do I make it uppercase as well?"),
        a("Chain it: `s[::-1].upper()`."),
        u("Great, thanks!"),
    ],
    "single_qa": [u("What is the boiling point of water at sea level?"), a("100 °C.")],
    "tool_flow": [
        {"role": "system", "content": "You are a weather assistant."},
        u("What's the weather in Paris?"),
        call("get_weather", {"city": "Paris"}),
        tool('{"temp_c": 18, "conditions": "sunny"}'),
        call("get_weather", {"city": "London"}),
        tool('{"temp_c": 14, "conditions": "cloudy"}'),
        a("Paris is 18 °C and sunny; London is 14 °C and cloudy."),
        u("Perfect, that's what I needed."),
    ],
    "agent_reads_after_edit": [
        u("Bump the version"),
        call("read_file", {"path": "pyproject.toml"}),
        tool('version = "0.1.0"'),
        call("write_file", {"path": "pyproject.toml", "text": 'version = "0.1.1"'}),
        tool("ok"),
        call("read_file", {"path": "pyproject.toml"}),
        tool('version = "0.1.1"'),
        a("Bumped to 0.1.1."),
    ],
}


@pytest.mark.parametrize("name", list(CLEAN))
def test_clean_conversations_show_no_negative_signals(name: str) -> None:
    report = analyze(CLEAN[name])
    negatives = [s for s in report.signals if s.group in NEGATIVE_GROUPS]
    assert negatives == []
    assert report.quality in ("neutral", "good", "excellent")


def test_satisfied_conversations_rate_good_or_better() -> None:
    for name in ("coding_help", "tool_flow"):
        report = analyze(CLEAN[name])
        assert report.counts_by_group["satisfaction"] >= 1
        assert report.quality in ("good", "excellent"), name


def test_no_signals_is_neutral() -> None:
    report = analyze(CLEAN["single_qa"])
    assert report.signals == ()
    assert report.quality == "neutral"
    assert report.score == 60
    assert report.turn_count == 1
    assert report.efficiency == 1.0


# --- false positives to avoid ---------------------------------------------------------


def react(text: str) -> SignalReport:
    """The user's reply to an assistant's answer."""
    return analyze([u("Write the migration"), a("Here it is: ALTER TABLE ..."), u(text)])


TRICKY = [
    ("No thanks, that's wrong.", "gratitude", "correction"),
    ("Thanks for nothing.", "gratitude", None),
    ("That's not right.", "confirmation", "correction"),
    ("That's not quite right", "confirmation", "correction"),
    ("It's not perfect.", "confirmation", None),
    ("Not exactly what I wanted.", "confirmation", "correction"),
    ("Is that right?", "confirmation", None),
    ("It still doesn't work.", "success", "negative_stance"),
    ("It isn't working.", "success", "correction"),
    ("Let me know if it works.", "success", None),
    ("Great, it broke again.", "confirmation", "negative_stance"),
    ("I need a perfect hash for these keys.", "confirmation", None),
    ("No worries, one more thing: add an index.", "correction", None),
    ("It isn\u2019t right.", "confirmation", "correction"),  # a curly apostrophe
    ("Now explain how it works under the hood.", "success", None),
    ("Move it right by two pixels.", "confirmation", None),
    ("I wrote it wrong in the ticket, the limit is 50.", "correction", None),
    ("Can you always use f-strings from now on?", "negative_stance", None),
    ("Why do you keep adding comments?", "confirmation", "negative_stance"),
]


@pytest.mark.parametrize(("text", "absent", "present"), TRICKY)
def test_tricky_negatives(text: str, absent: str, present: str | None) -> None:
    report = react(text)
    assert absent not in report.types(), report.as_dict()
    if present:
        assert present in report.types(), report.as_dict()


def test_clause_boundary_ends_a_negation() -> None:
    assert {"success", "gratitude"} <= react("Not perfect, but it works now, thank you!").types()


def test_no_answering_a_question_is_not_a_correction() -> None:
    report = analyze([u("Clean up the repo"), a("Shall I delete the old branches too?"), u("No.")])
    assert "correction" not in report.types()


def test_thanks_in_advance_is_not_gratitude() -> None:
    assert analyze([u("Thanks in advance, how do I list files?")]).signals == ()


def test_pasted_errors_are_not_the_agents_failures() -> None:
    paste = (
        "I get this when I run it:\n```\nsqlite3.OperationalError: no such table: users\n"
        "Error: invalid argument, connection refused, this is wrong\n```\nHow do I fix it?"
    )
    report = analyze([u("Set up the DB"), a("Run the init script."), u(paste)])
    assert report.signals == ()


def test_quoted_text_is_not_the_user_speaking() -> None:
    report = react("> That's wrong and useless\nThe reviewer wrote that; can you respond politely?")
    assert report.signals == ()


def test_tool_data_mentioning_errors_is_not_a_failure() -> None:
    msgs = [
        u("Find articles on nginx timeouts"),
        call("search", {"q": "nginx timeout rate limit"}),
        tool(
            '{"results": [{"title": "Tuning nginx proxy timeouts and rate limits",'
            ' "url": "https://example.com/nginx"}]}'
        ),
        a("Here is one article on tuning timeouts and rate limits."),
    ]
    assert analyze(msgs).signals == ()


def test_parallel_calls_in_one_step_are_not_drift() -> None:
    msgs: list[Msg] = [
        u("Weather in three cities"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"c{i}", "function": {"name": "get_weather", "arguments": f'{{"c":{i}}}'}}
                for i in range(3)
            ],
        },
        tool("18"),
        tool("14"),
        tool("20"),
    ]
    assert analyze(msgs).signals == ()


def test_one_successful_repeat_is_not_a_retry() -> None:
    msgs = [u("Status?"), call("status", {}), tool("green"), call("status", {}), tool("green")]
    assert "retry" not in analyze(msgs).types()


# --- scoring --------------------------------------------------------------------------

FRUSTRATED_LOOP = [
    u("Find the invoice for ACME and email it to finance"),
    call("search_invoices", {"customer": "ACME"}),
    tool("Error: upstream error 500"),
    call("search_invoices", {"customer": "ACME"}),
    tool("Error: upstream error 500"),
    call("search_invoices", {"customer": "ACME"}),
    tool("Error: upstream error 500"),
    a("I could not find the invoice."),
    u("That's wrong, it exists. Try again."),
    a("I could not find the invoice."),
    u("This is useless!!! You keep failing."),
    a("I could not find the invoice."),
    u("Forget it. Let me talk to a human."),
]


def test_a_frustrated_loop_scores_below_a_smooth_success() -> None:
    bad, good = analyze(FRUSTRATED_LOOP), analyze(CLEAN["tool_flow"])
    assert bad.score < analyze(CLEAN["single_qa"]).score < good.score
    assert bad.quality in ("poor", "severe")
    assert bad.efficiency < good.efficiency
    assert {"retry", "correction", "negative_stance", "quit", "escalation"} <= bad.types()
    assert bad.counts_by_group["execution_loops"] >= 1


def test_score_bands_are_ordered() -> None:
    order = ["severe", "poor", "neutral", "good", "excellent"]
    reports = [analyze(c) for c in (FRUSTRATED_LOOP, *CLEAN.values(), *(c[1] for c in CASES))]
    for r in reports:
        assert 0 <= r.score <= 100
        assert r.quality in order
    ranks = [order.index(r.quality) for r in sorted(reports, key=lambda r: r.score)]
    assert ranks == sorted(ranks)


def test_efficiency_falls_with_turns() -> None:
    report = analyze(dragging_conversation())
    assert report.turn_count == 10
    assert report.efficiency < 0.5
    assert analyze(dragging_conversation()[:4]).efficiency == 1.0


# --- input shapes and robustness ------------------------------------------------------


def to_canonical(msg: Msg) -> Message:
    content = msg.get("content")
    calls = [
        ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in msg.get("tool_calls") or ()
    ]
    return Message(
        role=msg["role"],
        content=[TextPart(content)] if content else [],
        tool_calls=calls,
        tool_call_id=msg.get("tool_call_id"),
    )


@pytest.mark.parametrize(
    "messages",
    [FRUSTRATED_LOOP, CLEAN["tool_flow"], *(c[1] for c in CASES)],
)
def test_dict_input_equals_canonical_input(messages: list[Msg]) -> None:
    assert analyze([to_canonical(m) for m in messages]).as_dict() == analyze(messages).as_dict()


def test_responses_in_each_shape_agree() -> None:
    msgs = [u("What's 2+2?")]
    reply = "It is 4. It is 4. It is 4 and that is the final answer here."
    earlier = [*msgs, a(reply), u("Again?")]
    shapes = [
        ChatResponse(id="r", model="m", content=[TextPart(reply)]),
        a(reply),
        {"choices": [{"message": a(reply)}]},
    ]
    reports = [analyze(earlier, shape).as_dict() for shape in shapes]
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["signals"][0]["type"] == "repetition"
    assert reports[0]["signals"][0]["message_index"] == 3


@pytest.mark.parametrize(
    "messages",
    [
        [],
        None,
        [None],
        [{}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": [None, 3, {"type": "image_url"}, {"text": 5}]}],
        [{"role": "wizard", "content": "hi"}],
        ["just a string", 42],
        [{"role": "assistant", "tool_calls": [None, {"function": None}, {"name": 3}]}],
        [Message(role="user", content=[TextPart(None)])],  # type: ignore[arg-type]
    ],
)
def test_odd_input_gives_a_quiet_report(messages: Any) -> None:
    report = analyze(messages)
    assert report.signals == ()
    assert report.quality == "neutral"
    json.loads(report.as_json())


def test_one_odd_message_does_not_hide_the_others() -> None:
    msgs = [
        {"role": ["user"], "content": "hi"},
        {"role": "assistant", "content": "Done.", "tool_calls": 5},
        u("That's wrong."),
    ]
    assert [s.type for s in analyze(msgs).signals] == ["correction"]


def test_odd_keyword_values_are_ignored() -> None:
    assert analyze([u("hi")], error=123, status="500").signals == ()  # type: ignore[arg-type]


def test_a_huge_message_is_clipped_not_fatal() -> None:
    huge = "lorem ipsum " * 500_000 + " This is useless."
    report = analyze([u("Summarise the log"), a("Done."), u(huge)])
    assert [s.message_index for s in report.of_type("negative_stance")] == [2]
    assert "lorem" in report.of_type("negative_stance")[0].snippet


def test_tool_call_arguments_as_objects_are_read() -> None:
    msgs: list[Msg] = [
        u("Status?"),
        {"role": "assistant", "tool_calls": [{"name": "status", "arguments": {"id": 1}}]},
        tool("Error: service unavailable"),
        {"role": "assistant", "tool_calls": [{"name": "status", "arguments": {"id": 1}}]},
    ]
    assert [s.message_index for s in analyze(msgs).of_type("retry")] == [3]


def test_snippets_are_short_and_collapsed() -> None:
    for _, msgs, _, kwargs in CASES:
        kwargs = dict(kwargs)
        report = analyze(msgs, kwargs.pop("response", None), **kwargs)
        for s in report.signals:
            assert s.snippet
            assert len(s.snippet) <= 120
            assert "  " not in s.snippet
            assert "\n" not in s.snippet


def test_report_json_and_determinism() -> None:
    first, second = analyze(FRUSTRATED_LOOP), analyze(FRUSTRATED_LOOP)
    assert first == second
    data = json.loads(first.as_json())
    assert set(data) == set(SignalReport().as_dict())
    assert {"quality", "score", "turn_count", "efficiency", "counts_by_group"} < set(data)
    assert set(data["counts_by_group"]) == set(GROUPS)
    assert sum(data["counts_by_group"].values()) == len(data["signals"])
    assert set(data["signals"][0]) == {"type", "group", "message_index", "confidence", "snippet"}


def _all_texts() -> list[str]:
    convs = [FRUSTRATED_LOOP, *CLEAN.values(), *(c[1] for c in CASES)]
    texts = [m["content"] for conv in convs for m in conv if isinstance(m.get("content"), str)]
    texts += [case[0] for case in TRICKY]
    return [t.lower() for t in texts]


def test_rule_gates_never_hide_a_match() -> None:
    """A rule's words or keys only skip a pattern that could not have matched."""
    from proxy.telemetry.signal_rules import TOOL_RULES, USER_RULES
    from proxy.telemetry.signals import _tokens

    for low in _all_texts():
        tokens = _tokens(low)
        for rule in (*USER_RULES, *TOOL_RULES):
            if rule.pattern.search(low):
                assert rule.may_match(low, tokens), (rule.type, low)
