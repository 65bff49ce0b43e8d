"""The trace detail screen of `plano traces`' viewer, driven with textual's Pilot on a real
SQLite trace store seeded by tests/trace_seed.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static
from trace_seed import (
    CLAUDE,
    GPT,
    T_AGENT,
    T_CHAIN,
    T_CHAIN_FALLBACK,
    T_CODE,
    T_FAIL,
    T_OLD,
    T_REASON,
    T_SPANS_ONLY,
    WEATHER_HANDOFF,
    chain_runs,
    seed,
)

from plano_cli.traces_tui.detail_screen import SpanAttributes, TraceDetailScreen
from plano_cli.traces_tui.waterfall import Waterfall
from proxy.telemetry.store import (
    RequestRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceDetail,
    TraceStore,
)

NOW = 1_750_000_000.0
T_NESTED = "00c0ffee" + "0" * 24
HOME = "the list of traces"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraceStore]:
    path = tmp_path / "traces.db"
    seed(path, NOW)
    with TraceStore.open(path) as opened:
        opened.write(nested_agent_trace())
        yield opened


def nested_agent_trace() -> StoreBatch:
    """An agent's own spans three deep, with markup-like text where a trace can carry it."""
    start = int((NOW - 30) * 1e9)
    ms = 1_000_000

    def span(n: int, name: str, parent: int | None, begin: int, end: int, **attrs) -> SpanRow:
        return SpanRow(
            f"00c0ffee{n:08x}",
            T_NESTED,
            name,
            start + begin * ms,
            start + end * ms,
            None if parent is None else f"00c0ffee{parent:08x}",
            attributes=attrs,
        )

    spans = [
        span(0, "agent.run", None, 0, 400, **{"agent.name": "[bold]planner[/]"}),
        span(1, "agent.plan", 0, 10, 100, **{"plan.steps": '["search", "answer"]'}),
        span(2, "tool.search", 1, 20, 90, **{"tool.query": "[/] csv"}),
        span(3, "agent.answer", 0, 120, 390, **{"agent.config": '{"temperature": 0.2}'}),
    ]
    events = [SpanEventRow(spans[2].span_id, T_NESTED, "retry", start + 50 * ms, {"n": 2})]
    row = RequestRow(
        trace_id=T_NESTED,
        started_at=NOW - 30,
        span_id="00c0ffee000000ff",  # the gateway's call: its own spans are not stored
        model="openai/gpt-4o-mini",
        provider="openai",
        status=200,
        latency_ms=400.0,
        request_messages=[
            {"role": "user", "content": "Is [bold]this[/bold] bold? And [/] this?"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "second part"},
                ],
            },
            {"role": "user", "content": "\n".join(f"line {n}" for n in range(60))},
        ],
        response_messages=[
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "name": "lookup", "input": {"q": "[red]x"}}],
            }
        ],
    )
    return StoreBatch(requests=[row], spans=spans, events=events)


class Host(App[None]):
    """Stands in for the viewer: a first screen, then the detail pushed over it."""

    def __init__(self, detail: TraceDetail, theme: str = "textual-dark") -> None:
        super().__init__()
        self.detail = detail
        self.start_theme = theme

    def compose(self) -> ComposeResult:
        yield Static(HOME)

    def on_mount(self) -> None:
        self.theme = self.start_theme
        self.push_screen(TraceDetailScreen(self.detail))


def shown(app: App) -> str:
    """The terminal's text as the user sees it now (textual has no public call for it)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def detail_of(store: TraceStore, trace_id: str) -> TraceDetail:
    detail = store.get_trace(trace_id)
    assert detail is not None
    return detail


async def test_summary_band_shows_the_request_at_80_columns(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = shown(app).splitlines()
        band = "\n".join(lines[:3])
        assert "4bf92f3577b3" in band
        assert "200" in band
        assert "auto → openai/gpt-4o-mini (openai)" in band
        assert "code via embedded" in band
        assert "latency 850 ms" in band
        assert "ttft 120 ms" in band
        assert "tokens 100→50" in band
        assert "cost $0.0004" in band
        assert "signals poor (35)" in band
        assert "attempts 2 (1 failed)" in band
        assert "1 Spans" in lines[3]  # the band is three lines, then the sections


async def test_waterfall_lists_spans_in_tree_order_with_the_failed_attempt(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = shown(app)
        rows = [
            line for line in text.splitlines() if "plano(" in line and "ms" in line and "█" in line
        ]
        names = [row[2:].split("  ")[0].strip() for row in rows]
        assert names == [
            "plano(inbound)",
            "├─ plano(routing)",
            "├─ plano(llm)",
            "└─ plano(llm)",
        ]
        assert rows[2].startswith("✗")  # the 503 stands out; the answering attempt does not
        assert not rows[3].startswith("✗")
        assert "850 ms" in rows[0]
        assert "787 ms" in rows[3]


async def test_j_k_and_arrows_move_the_selection_and_the_attributes_follow(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        waterfall = app.screen.query_one(Waterfall)
        assert app.focused is waterfall
        assert "http.response.status_code" in shown(app)
        assert "router.backend" not in shown(app)

        await pilot.press("j")
        assert waterfall.highlighted == 1
        text = shown(app)
        assert "router.backend" in text
        assert "routing.determination_ms" in text
        assert '{"code": 0.81, "reasoning": 0.42}' in text  # a JSON string, read as JSON
        assert "http.response.status_code" not in text

        await pilot.press("down")
        assert waterfall.highlighted == 2
        text = shown(app)
        assert "error: HTTP 503" in text
        assert "llm.outcome" in text

        await pilot.press("j")
        text = shown(app)
        assert "llm.usage.cost_usd" in text
        assert "first_token" in text  # its event
        assert "error: HTTP 503" not in text

        await pilot.press("k", "up")
        assert waterfall.highlighted == 1
        assert "router.backend" in shown(app)


async def test_enter_gives_the_keys_to_the_attributes_and_back(store):
    app = Host(detail_of(store, T_NESTED))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("j", "j", "enter")
        attributes = app.screen.query_one(SpanAttributes)
        assert app.focused is attributes
        assert app.screen.query_one(Waterfall).highlighted == 2
        await pilot.press("enter")
        assert app.focused is app.screen.query_one(Waterfall)
        await pilot.press("j")
        assert app.screen.query_one(Waterfall).highlighted == 3


async def test_agent_spans_nest_with_rails_and_show_every_attribute(store):
    app = Host(detail_of(store, T_NESTED))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        text = shown(app)
        assert "  agent.run" in text
        assert "├─ agent.plan" in text
        assert "│  └─ tool.search" in text
        assert "└─ agent.answer" in text
        assert text.index("tool.search") < text.index("agent.answer")
        assert "[bold]planner[/]" in text  # literal, not bold markup

        await pilot.press("j")
        text = shown(app)
        assert '["search", "answer"]' in text  # a JSON string attribute, read as JSON

        await pilot.press("j")
        text = shown(app)
        assert "[/] csv" in text
        assert "retry" in text  # the span's event, with its attributes
        assert "n  2" in text.replace("   ", "  ")

        await pilot.press("j")
        text = shown(app)
        assert '{"temperature": 0.2}' in text


@pytest.mark.parametrize(
    ("keys", "expected", "absent"),
    [
        (["2"], ["1 call", "+0.0 ms", "openai/gpt-4o-mini", "ok", "850 ms", "$0.0004"], []),
        (
            ["4"],
            [
                "Request messages (2)",
                "[1] user",
                "Write a Rust function that parses a CSV line",
                "Response messages (1)",
                "→ tool call run_tests",
                '"crate": "csv"',
            ],
            ["plano(inbound)"],
        ),
        (
            ["5"],
            ["embedded (12 ms)", "code → openai/gpt-4o-mini", "0.810", "0.420", "cached no"],
            ["fell back"],
        ),
        (["6"], ["quality poor", "correction", "no, I meant Rust", "gratitude"], ["no signals"]),
        (["7"], ["total $0.0004", "HTTP 503", "$0.0001", "$0.0003", "100→50"], []),
        (["tab", "tab", "tab", "tab"], ["code → openai/gpt-4o-mini"], []),
        (
            ["right", "right", "right", "right", "right", "left"],
            ["embedded (12 ms)"],
            ["quality poor"],
        ),
        (["shift+tab"], ["no filters: no filter ran on this trace's calls"], []),
        (["shift+tab", "shift+tab"], ["total $0.0004"], []),
        (["7", "1"], ["plano(inbound)", "http.response.status_code"], ["total $0.0004"]),
    ],
)
async def test_sections_switch_by_key(store, keys, expected, absent):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        text = shown(app)
        for part in expected:
            assert part in text
        for part in absent:
            assert part not in text


async def test_routing_scores_are_sorted_highest_first(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("5")
        text = shown(app)
        assert text.index("0.810") < text.index("0.420")
        code_bar = next(line for line in text.splitlines() if "0.810" in line).count("█")
        reasoning_bar = next(line for line in text.splitlines() if "0.420" in line).count("█")
        assert code_bar > reasoning_bar > 0


async def test_a_failed_request_shows_its_error_and_the_routers_fallback(store):
    app = Host(detail_of(store, T_FAIL))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        band = "\n".join(shown(app).splitlines()[:3])
        assert "502" in band
        assert "fallback timeout" in band
        assert "error upstream timeout" in band
        assert "✗ plano(inbound)" in shown(app)  # the failed root span stands out
        await pilot.press("5")
        text = shown(app)
        assert "the router fell back: timeout" in text
        assert "(none: no route matched)" in text


async def test_spans_only_trace_says_what_is_missing(store):
    app = Host(detail_of(store, T_SPANS_ONLY))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = shown(app)
        assert "no summary yet" in text
        assert "agent.plan" in text
        assert "still open" in text
        assert "░" in text  # an open span is drawn to the end in the lighter shade
        expected = {
            "2": "no calls stored yet",
            "4": "not captured yet",
            "5": "not routed",
            "6": "no signals",
            "7": "not known yet",
        }
        for key, message in expected.items():
            await pilot.press(key)
            assert message in shown(app)


async def test_without_captured_messages_or_signals(store):
    app = Host(detail_of(store, T_REASON))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        text = shown(app)
        assert text.count("not captured (tracing.store.capture_messages is off") == 2
        await pilot.press("6")
        assert "no signals" in shown(app)


async def test_a_request_that_was_not_routed(store):
    app = Host(detail_of(store, T_OLD))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        assert "not routed" in shown(app)
        await pilot.press("7")
        text = shown(app)
        assert "total -" in text
        assert "unknown" in text


async def test_messages_are_shown_literally_never_as_markup(store):
    app = Host(detail_of(store, T_NESTED))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("4")
        text = shown(app)
        assert "Is [bold]this[/bold] bold? And [/] this?" in text
        assert "first part" in text
        assert "(image_url, not stored)" in text
        assert "second part" in text
        await pilot.press("end")
        text = shown(app)
        assert "→ tool call lookup" in text
        assert '"q": "[red]x"' in text


async def test_long_messages_scroll_with_j(store):
    app = Host(detail_of(store, T_NESTED))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        pane = app.focused
        assert pane is not None
        assert pane.scroll_y == 0
        assert "line 59" not in shown(app)
        await pilot.press("j", "j", "j")
        assert pane.scroll_y == 3
        await pilot.press("end")
        assert "line 59" in shown(app)


async def test_the_waterfall_fills_a_wider_terminal(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()

        def root_bar() -> int:
            return next(line for line in shown(app).splitlines() if "plano(inbound)" in line).count(
                "█"
            )

        narrow = root_bar()
        await pilot.resize_terminal(140, 30)
        await pilot.pause()
        assert root_bar() > narrow + 40


@pytest.mark.parametrize("key", ["escape", "backspace"])
async def test_escape_goes_back_to_the_previous_screen(store, key):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TraceDetailScreen)
        await pilot.press(key)
        assert not isinstance(app.screen, TraceDetailScreen)
        assert HOME in shown(app)


async def test_q_quits(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0
        assert not app.is_running


async def test_footer_lists_the_keys(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = shown(app).splitlines()[-1]
        for part in ("j/k", "Span", "Attributes", "tab", "1-8", "Section", "esc", "Back", "q"):
            assert part in footer
        await pilot.press("2")
        await pilot.pause()
        footer = shown(app).splitlines()[-1]
        assert "Scroll" in footer
        assert "Attributes" not in footer


@pytest.mark.parametrize("theme", ["textual-light", "textual-dark"])
async def test_renders_in_light_and_dark_themes(store, theme):
    app = Host(detail_of(store, T_CODE), theme=theme)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == theme
        assert "auto → openai/gpt-4o-mini" in shown(app)
        # The screen's colours follow the theme: nothing in it paints a fixed background.
        for widget in (app.screen.query_one("#summary"), app.screen.query_one(SpanAttributes)):
            _, background = widget.background_colors
            assert (background.brightness > 0.5) == (theme == "textual-light")


async def test_a_summary_without_spans_says_so(store):
    trace_id = "5" * 32
    store.write(
        StoreBatch(
            requests=[RequestRow(trace_id=trace_id, started_at=NOW, span_id="5" * 16, status=200)]
        )
    )
    app = Host(detail_of(store, trace_id))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "no spans stored for this trace" in shown(app)


async def test_an_agents_run_shows_the_sums_and_lists_every_call(store):
    app = Host(detail_of(store, T_AGENT))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        band = "\n".join(shown(app).splitlines()[:3])
        # The trace: its worst status marked (a stream failed after its 200), both models,
        # three calls, its wall-clock latency and summed tokens and cost.
        assert "200!" in band
        assert f"2 models: {CLAUDE}, {GPT}" in band
        assert "calls 3" in band
        assert "outcome stream_error" in band
        assert "latency 1.80 s" in band
        assert "tokens 140→85" in band
        assert "cost $0.0017" in band
        # The waterfall holds every call's spans.
        waterfall = [line for line in shown(app).splitlines() if "█" in line]
        assert sum("plano(inbound)" in line for line in waterfall) == 3
        await pilot.press("2")
        text = shown(app)
        assert "3 calls" in text
        rows = [line for line in text.splitlines() if re.match(r"\s*\d+\s+\+", line)]
        assert len(rows) == 3
        assert CLAUDE in rows[0]
        assert GPT in rows[1]
        assert "200!" in rows[1]
        assert "stream_error" in rows[1]
        assert "+1.40 s" in rows[2]
        await pilot.press("5")
        text = shown(app)
        assert "Call 1 of 3" in text
        assert "Call 3 of 3" in text
        assert "Call 2 of 3" not in text  # not routed
        await pilot.press("4")
        assert shown(app).count("not captured") == 1


def chain_detail(store: TraceStore, trace_id: str) -> TraceDetail:
    for batch in chain_runs(NOW):
        store.write(batch)
    return detail_of(store, trace_id)


async def test_the_chain_shows_the_orchestrators_choice_then_each_agent_in_order(store):
    app = Host(chain_detail(store, T_CHAIN))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        lines = shown(app).splitlines()
        text = "\n".join(lines)
        assert "plano_orchestrator (40 ms), routed" in text
        assert "weather_agent → flight_agent" in text
        assert re.search(r"fallback +no", text)
        first = next(i for i, line in enumerate(lines) if "agent 1" in line)
        second = next(i for i, line in enumerate(lines) if "agent 2" in line)
        assert first < second
        assert "weather_agent  ok  320 ms" in lines[first]
        assert f"handoff {WEATHER_HANDOFF}" in lines[first + 1]
        assert "flight_agent  ok  1.25 s" in lines[second]
        assert "answered the client" in lines[second + 1]


async def test_a_failed_orchestrator_and_agent_show_in_the_chain(store):
    app = Host(chain_detail(store, T_CHAIN_FALLBACK))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        text = shown(app)
        assert "plano_orchestrator (40 ms), fallback" in text
        assert re.search(r"fallback +timeout", text)
        assert "flight_agent  HTTP 500  90 ms  agent 'flight_agent' answered HTTP 500" in text


async def test_a_trace_without_agents_says_so_in_the_chain(store):
    app = Host(detail_of(store, T_AGENT))  # an agent's own run: no agent listener
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        text = shown(app)
        assert "no agents: this trace has no call of an agent listener" in text
        assert "orchestrator" not in text
