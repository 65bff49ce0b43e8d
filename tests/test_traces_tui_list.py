"""`plano traces`' interactive viewer: the trace list, its filter bar, paging and live
update, driven with textual's Pilot over a real SQLite store in tmp_path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from trace_seed import (
    CLAUDE,
    GPT,
    MESSAGES,
    T_AGENT,
    T_CHAIN,
    T_CHAIN_FALLBACK,
    T_CODE,
    T_FAIL,
    T_OLD,
    T_REASON,
    T_SPANS_ONLY,
    chain_runs,
    seed,
    traced,
)
from typer.testing import CliRunner

from plano_cli.app import app as cli
from plano_cli.commands import traces as traces_command
from plano_cli.traces_cli.access import empty_store_hint, no_store_hint
from plano_cli.traces_tui import list_screen
from plano_cli.traces_tui.app import TracesApp
from plano_cli.traces_tui.detail_screen import TraceDetailScreen
from plano_cli.traces_tui.filter_bar import FilterBar
from plano_cli.traces_tui.filter_text import ArgumentError, filter_line, parse_filter
from plano_cli.traces_tui.list_columns import plan
from plano_cli.traces_tui.list_screen import TraceListScreen
from plano_cli.traces_tui.trace_list import TraceList
from proxy.telemetry.store import StoreBatch, TraceStore

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
SEEDED = [T_CODE, T_REASON, T_FAIL, T_AGENT, T_OLD]


pytestmark = pytest.mark.usefixtures("utc")  # conftest: local time is UTC


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    seed(path, NOW)
    return path


def viewer(path: Path, **options: object) -> TracesApp:
    options.setdefault("now", lambda: NOW)
    options.setdefault("poll_s", None)  # tests run each poll themselves
    return TracesApp(path, **options)  # type: ignore[arg-type]


async def settle(pilot) -> None:
    """Until no worker runs: each result may start another (the next page, say)."""
    for _ in range(20):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            return
    raise AssertionError("the workers never settled")


def screen_of(app: TracesApp) -> TraceListScreen:
    return app.list_screen


def shown(app: TracesApp) -> list[str]:
    return [row.trace_id for row in screen_of(app).table.rows]


def highlighted(app: TracesApp) -> str | None:
    row = screen_of(app).table.highlighted
    return row.trace_id if row is not None else None


def line(table: TraceList, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


def write(path: Path, *batches: StoreBatch) -> None:
    with TraceStore.open(path) as store:
        for batch in batches:
            store.write(batch)


def request(n: int, started_at: float, **fields: object) -> StoreBatch:
    fields.setdefault("model", GPT)
    fields.setdefault("status", 200)
    fields.setdefault("latency_ms", 100.0)
    fields.setdefault("listener", "model")
    return traced(f"{n:032x}", started_at, **fields)


def many(path: Path, count: int, newest: float) -> list[str]:
    """`count` requests a second apart, the newest at `newest`; their ids newest first."""
    batch = StoreBatch()
    for n in range(count):
        one = request(n + 1, newest - count + 1 + n)
        batch.requests += one.requests
        batch.spans += one.spans
    write(path, batch)
    return [f"{n:032x}" for n in range(count, 0, -1)]


async def type_filter(pilot, text: str) -> None:
    await pilot.press("slash", *text, "enter")
    await settle(pilot)


# -- the list ----------------------------------------------------------------------------


async def test_rows_are_newest_first_with_the_list_columns_at_80x24(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert shown(app) == SEEDED  # the spans-only trace has no summary: not a request
        assert T_SPANS_ONLY not in shown(app)
        table = screen_of(app).table
        layout = table.layout
        assert layout is not None
        # Narrow: the optional columns go and the signal flag turns compact.
        # CALLS goes last: the dates of older rows take the room it needs here.
        assert layout.names == ("TIME", "ROUTE", "MODEL", "STATUS", "LATENCY", "COST", "SIG")
        header, first, fail = line(table, 0), line(table, 1), line(table, 3)
        assert len(header) == table.scrollable_content_region.width == 79
        assert header.split() == list(layout.names)
        assert first.split() == ["15:06:30", "code", GPT, "200", "850", "ms", "$0.0004", "●2"]
        assert "- (fallback)" in fail
        assert "502" in fail
        assert "30.00 s" in fail
        # The agent's run: three calls added up, its failed stream marked on the status.
        run = line(table, 4).split()
        assert run == ["13:06:40", "code", "2", "models", "200!", "1.80", "s", "$0.0017"]
        assert "Jun 12 15:06" in line(table, 5)  # older than today: the date


async def test_every_column_shows_at_120_columns(db):
    app = viewer(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = screen_of(app).table
        assert table.layout is not None
        assert table.layout.names == (
            "TIME",
            "LISTENER",
            "ROUTE",
            "MODEL",
            "CALLS",
            "STATUS",
            "LATENCY",
            "TTFT",
            "TOKENS",
            "COST",
            "SIGNALS",
        )
        first = line(table, 1).split()
        assert first[:4] == ["15:06:30", "model", "code", GPT]
        assert " ".join(first[4:]) == "1 200 850 ms 120 ms 100→50 $0.0004 poor (2)"
        run = line(table, 4).split()
        assert " ".join(run[3:]) == "2 models 3 200! 1.80 s 300 ms 140→85 $0.0017 -"
        await pilot.resize_terminal(140, 40)
        await settle(pilot)
        assert table.layout.names[-2:] == ("OUTCOME", "SIGNALS")  # room for how each ended
        assert "stream_error" in line(table, 4)
        assert CLAUDE in line(table, 2)  # not cut: there is room


def test_narrow_layouts_fit_and_drop_the_optional_columns_first():
    measured = {"TIME": 12, "ROUTE": 12, "MODEL": 25, "STATUS": 4, "LATENCY": 7, "COST": 7}
    measured |= {"LISTENER": 6, "TTFT": 6, "TOKENS": 7, "SIGNALS": 8, "SIG": 2, "CALLS": 2}
    measured |= {"OUTCOME": 12}
    for width in range(60, 200):
        layout = plan(width, measured)
        used = sum(w for _, w in layout) + 2 * len(layout.columns)
        assert used <= width, width
    assert "SIGNALS" in plan(119, measured).names
    assert "OUTCOME" not in plan(119, measured).names  # only where everything else fits
    assert "OUTCOME" in plan(140, measured).names
    assert plan(90, measured).names[-1] == "SIG"
    assert "LISTENER" not in plan(100, measured).names
    assert "CALLS" in plan(90, measured).names  # the last optional one to go
    assert {"TIME", "STATUS", "LATENCY", "COST", "MODEL", "ROUTE"} <= set(plan(60, measured).names)


async def test_status_is_colored_by_class(db):
    app = viewer(db)
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        table = screen_of(app).table
        await pilot.press("g")  # the cursor on row 1, so rows 2-5 show their tones

        def color_of(y: int, text: str):
            for segment in table.render_line(y):
                if segment.text.strip() == text:
                    return segment.style.color
            raise AssertionError(f"{text!r} not on line {y}")

        await pilot.press("j")
        ok = table.get_component_rich_style("trace-list--ok").color
        warn = table.get_component_rich_style("trace-list--warn").color
        error = table.get_component_rich_style("trace-list--error").color
        assert len({ok, warn, error}) == 3
        assert color_of(1, "200") == ok
        assert color_of(3, "502") == error
        assert color_of(4, "200!") == error  # a stream that failed after its 200
        assert color_of(5, "429") == warn


async def test_j_k_and_the_arrows_move_the_cursor(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert highlighted(app) == T_CODE
        await pilot.press("j", "j")
        assert highlighted(app) == T_FAIL
        await pilot.press("k")
        assert highlighted(app) == T_REASON
        await pilot.press("down", "down", "down")
        assert highlighted(app) == T_OLD
        await pilot.press("down")  # the last row: stays
        assert highlighted(app) == T_OLD
        await pilot.press("up")
        assert highlighted(app) == T_AGENT
        await pilot.press("g")
        assert highlighted(app) == T_CODE
        await pilot.press("G")
        assert highlighted(app) == T_OLD


# -- the filter bar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (f"model={CLAUDE}", [T_REASON, T_AGENT]),
        ("status=502", [T_FAIL]),
        ("since=90s", [T_CODE, T_REASON]),
        ("since=3h model=" + GPT, [T_CODE, T_FAIL, T_AGENT]),  # the run called GPT once
        ("model=" + GPT + " route=code", [T_CODE]),  # ... not on its routed calls
        ("outcome=stream_error", [T_AGENT]),
        ("min_latency_ms=2000", [T_REASON, T_FAIL]),
        ("has_signals=true", [T_CODE]),
        ("listener=agents", [T_AGENT]),
        ("Rust function", [T_CODE]),  # bare words: text in the messages
        ("upstream timeout", [T_FAIL]),  # ... or in the error
    ],
)
async def test_the_filter_bar_requeries_the_store(db, typed, expected):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_filter(pilot, typed)
        assert shown(app) == expected
        screen = screen_of(app)
        assert screen.view.line == typed
        assert not screen.query_one(FilterBar).is_open
        assert screen.table.has_focus
        status = str(screen.query_one("StatusLine").visual)
        assert f"{len(expected)} loaded" in status
        assert f"filter: {typed}" in status


async def test_a_filter_matching_nothing_says_so_and_a_new_one_brings_rows_back(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_filter(pilot, "status=418")
        screen = screen_of(app)
        assert shown(app) == []
        assert screen.notice is not None
        assert screen.notice.startswith("no traces match: status=418")
        await pilot.press("slash", *["backspace"] * 3, *"200", "enter")
        await settle(pilot)
        assert screen.view.line == "status=200"
        assert shown(app) == [T_CODE, T_REASON, T_AGENT]
        assert screen.notice is None


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("status=ok", "error: --where status: expected an HTTP status such as 200, not 'ok'"),
        ("colour=red", "error: --where: unknown key 'colour'; valid keys: api, listener,"),
        ("since=yesterday", "error: --since: expected a duration such as 45s, 30m, 2h, 1d"),
        ("min_latency_ms=slow", "error: --where min_latency_ms: expected a number"),
        ("text=a rust", "error: --where: text is given twice"),
    ],
)
async def test_a_bad_filter_shows_the_cli_message_and_keeps_the_rows(db, typed, message):
    app = viewer(db, view=parse_filter("status=200", NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "ctrl+u", *typed, "enter")
        await settle(pilot)
        screen = screen_of(app)
        bar = screen.query_one(FilterBar)
        assert bar.is_open  # to fix it
        assert bar.error is not None
        assert bar.error.startswith(message)
        assert screen.view.line == "status=200"  # the previous filter
        assert shown(app) == [T_CODE, T_REASON, T_AGENT]
        await pilot.press("escape")
        assert not bar.is_open
        assert bar.error is None
        assert shown(app) == [T_CODE, T_REASON, T_AGENT]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("agent=weather_agent", [T_CHAIN]),
        ("agent=flight_agent", [T_CHAIN, T_CHAIN_FALLBACK]),
        ("agent=flight_agent status=502", [T_CHAIN_FALLBACK]),  # the same call ran and failed
        ("agent=flight_agent listener=model", []),  # a model listener's call runs no agent
        ("agent=hotel_agent", []),
    ],
)
async def test_the_filter_bar_lists_the_traces_that_ran_an_agent(db, typed, expected):
    write(db, *chain_runs(NOW))
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert {T_CHAIN, T_CHAIN_FALLBACK} <= set(shown(app))
        await type_filter(pilot, typed)
        assert shown(app) == expected
        assert screen_of(app).view.line == typed


async def test_an_unknown_key_beside_agent_gets_the_clis_message(db, runner):
    typed = "agents=weather_agent"
    cli_run = runner.invoke(cli, ["traces", "list", "--db", str(db), "--where", typed])
    assert cli_run.exit_code == 2
    message = cli_run.stderr.splitlines()[0]
    assert message.startswith("error: --where: unknown key 'agents'; valid keys:")
    assert "agent" in message.split("valid keys:")[1].split(", ")
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_filter(pilot, typed)
        bar = screen_of(app).query_one(FilterBar)
        assert bar.is_open
        assert bar.error == message
        assert shown(app) == SEEDED


async def test_escape_closes_the_bar_without_applying(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j")
        await pilot.press("slash", *"status=502")
        screen = screen_of(app)
        bar = screen.query_one(FilterBar)
        assert bar.is_open
        assert not screen.table.has_focus
        await pilot.press("escape")
        await settle(pilot)
        assert not bar.is_open
        assert screen.table.has_focus
        assert screen.view.line == ""
        assert shown(app) == SEEDED
        assert highlighted(app) == T_REASON
        await pilot.press("slash")  # opens on the filter in force, not the one abandoned
        assert bar.query_one("Input").value == ""  # type: ignore[attr-defined]


async def test_the_command_line_filter_is_the_first_one(db):
    view = parse_filter(filter_line("90s", ["model=" + GPT]), NOW)
    app = viewer(db, view=view)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert shown(app) == [T_CODE]
        assert screen_of(app).view.line == f"since=90s model={GPT}"


def test_filter_lines_parse_as_the_cli_options_do():
    view = parse_filter("model=x since=30m  status=502 rust csv", NOW)
    filters = view.filters
    assert filters.where == {"model": "x", "status": "502"}
    assert filters.since == NOW - 1800
    assert filters.text == "rust csv"
    assert view.active
    assert not parse_filter("   ", NOW).active
    assert parse_filter('text="two  spaces"', NOW).filters.text == "two  spaces"
    assert parse_filter("don't", NOW).filters.text == "don't"  # not a quoting error
    with pytest.raises(ArgumentError, match="--since is given twice"):
        parse_filter("since=1h since=2h", NOW)
    # What the command line's options become, typed back, is the same filter.
    line = filter_line("2h", ["text=hello world", "status=200"])
    again = parse_filter(line, NOW).filters
    assert again.text == "hello world"
    assert again.where == {"status": "200"}
    assert again.since == NOW - 7200


# -- paging ------------------------------------------------------------------------------


async def test_paging_loads_the_next_page_when_the_cursor_nears_the_end(tmp_path):
    path = tmp_path / "traces.db"
    ids = many(path, 700, NOW)
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        assert shown(app) == ids[:200]  # one page, not the table
        assert "200 loaded, more below" in str(screen.query_one("StatusLine").visual)
        await pilot.press("pagedown")  # nowhere near the end yet
        await settle(pilot)
        assert len(shown(app)) == 200
        await pilot.press("G")  # the last row loaded: the next page comes
        await settle(pilot)
        assert shown(app) == ids[:400]
        assert highlighted(app) == ids[199]  # the cursor stayed where it went
        for _ in range(3):
            await pilot.press("G")
            await settle(pilot)
        assert shown(app) == ids  # every row once, in the store's order
        assert "700 loaded │" in str(screen.query_one("StatusLine").visual)
        assert "more below" not in str(screen.query_one("StatusLine").visual)


async def test_scrolling_the_view_near_the_end_loads_too(tmp_path):
    path = tmp_path / "traces.db"
    ids = many(path, 300, NOW)
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = screen_of(app).table
        table.scroll_to(y=180, animate=False)
        await settle(pilot)
        assert shown(app) == ids
        assert highlighted(app) == ids[0]  # scrolling moves the view, not the cursor


# -- live update -------------------------------------------------------------------------


async def test_a_new_request_appears_on_top_and_the_cursor_keeps_its_trace(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j", "j")
        assert highlighted(app) == T_FAIL
        new = request(901, NOW + 5, model=CLAUDE, status=503)
        write(db, new)
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == [f"{901:032x}", *SEEDED]
        assert highlighted(app) == T_FAIL  # the same trace, one row further down
        assert screen_of(app).table.cursor == 3
        # Polled again, nothing new: nothing changes (each request is reported once).
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == [f"{901:032x}", *SEEDED]


async def test_a_new_call_of_a_listed_trace_updates_its_row_in_place(db):
    app = viewer(db)
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j", "j", "j")
        assert highlighted(app) == T_AGENT
        table = screen_of(app).table
        assert "140→85" in line(table, 4)
        # The agent's run, begun two hours ago, makes a fourth call now, to a third model,
        # and it fails.
        fourth = traced(
            T_AGENT,
            NOW + 1,
            call=3,
            model="ollama/llama3.2",
            provider="ollama",
            status=502,
            error="upstream 502",
            latency_ms=500.0,
            input_tokens=10,
            output_tokens=0,
        )
        write(db, fourth)
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == SEEDED  # one row a trace: the row changed, none was added
        assert highlighted(app) == T_AGENT
        row = table.highlighted
        assert row is not None
        assert (row.calls, row.models, row.status, row.input_tokens) == (4, 3, 502, 150)
        cells = line(table, 4)
        for part in ("3 models", " 4 ", "502", "120.0 min", "150→85"):
            assert part in cells, (part, cells)


async def test_a_request_that_finished_late_goes_in_its_sorted_place(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        write(db, request(902, NOW - 30))  # started before T_CODE's last poll, ended now
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == [T_CODE, f"{902:032x}", T_REASON, T_FAIL, T_AGENT, T_OLD]
        assert highlighted(app) == T_CODE


async def test_new_rows_do_not_move_the_view_when_scrolled_down(tmp_path):
    path = tmp_path / "traces.db"
    ids = many(path, 300, NOW)
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = screen_of(app).table
        await pilot.press("pagedown", "pagedown", "j")
        await settle(pilot)
        top = round(table.scroll_y)
        assert top > 0
        top_id, cursor_id = shown(app)[top], highlighted(app)
        write(path, request(5001, NOW + 1), request(5002, NOW + 2))
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app)[:3] == [f"{5002:032x}", f"{5001:032x}", ids[0]]
        assert highlighted(app) == cursor_id
        assert shown(app)[round(table.scroll_y)] == top_id  # the same rows in view


async def test_a_long_live_run_lets_the_oldest_rows_go_and_pages_them_back(tmp_path, monkeypatch):
    monkeypatch.setattr(list_screen, "LIVE_MAX", 60)
    path = tmp_path / "traces.db"
    ids = many(path, 70, NOW)
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert shown(app) == ids  # one page of 200 holds them all
        write(path, request(5003, NOW + 1))
        screen_of(app).poll()
        await settle(pilot)
        newest = [f"{5003:032x}", *ids]
        assert shown(app) == newest[:30]  # the user is at the top: half of LIVE_MAX kept
        assert "30 loaded, more below" in str(screen_of(app).query_one("StatusLine").visual)
        await pilot.press("j")  # within reach of the end: the next page
        await settle(pilot)
        assert shown(app) == newest


async def test_live_rows_are_held_to_the_filter(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_filter(pilot, "status=502")
        write(db, request(903, NOW + 1, status=200), request(904, NOW + 2, status=502))
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == [f"{904:032x}", T_FAIL]


async def test_live_rows_are_held_to_a_text_search(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_filter(pilot, "Rust")
        assert shown(app) == [T_CODE]
        rust = request(905, NOW + 1, request_messages=MESSAGES)
        other = request(906, NOW + 2, request_messages=[{"role": "user", "content": "Go?"}])
        write(db, rust, other)
        screen_of(app).poll()
        await settle(pilot)
        assert shown(app) == [f"{905:032x}", T_CODE]


async def test_p_pauses_the_live_update_and_resumes_it(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        await pilot.press("p")
        assert not screen.live
        assert "paused" in str(screen.query_one("StatusLine").visual)
        write(db, request(907, NOW + 1))
        screen.poll()
        await settle(pilot)
        assert shown(app) == SEEDED
        assert "paused (1 new)" in str(screen.query_one("StatusLine").visual)
        await pilot.press("p")  # resumes with what was held, and polls at once
        await settle(pilot)
        assert screen.live
        assert "● live" in str(screen.query_one("StatusLine").visual)
        assert shown(app) == [f"{907:032x}", *SEEDED]


async def test_a_long_pause_reloads_when_it_ends(db, monkeypatch):
    monkeypatch.setattr(list_screen, "LIVE_MAX", 2)
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        await pilot.press("j", "p")
        write(db, *(request(920 + n, NOW + n) for n in range(3)))
        screen.poll()
        await settle(pilot)
        assert "paused (2+ new)" in str(screen.query_one("StatusLine").visual)
        await pilot.press("p")
        await settle(pilot)
        assert shown(app) == [f"{922:032x}", f"{921:032x}", f"{920:032x}", *SEEDED]
        assert highlighted(app) == T_REASON


async def test_the_timer_polls_by_itself(db):
    app = viewer(db, poll_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        write(db, request(908, NOW + 1))
        for _ in range(100):  # at most 5 s: the timer, not this loop, brings it
            await pilot.pause(0.05)
            if f"{908:032x}" in shown(app):
                break
        assert shown(app)[0] == f"{908:032x}"


async def test_r_reloads_and_keeps_the_cursor_on_its_trace(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("p", "j", "j")  # paused: only the reload can bring new rows
        write(db, request(909, NOW + 1))
        await pilot.press("r")
        await settle(pilot)
        assert shown(app) == [f"{909:032x}", *SEEDED]
        assert highlighted(app) == T_FAIL


# -- no store, an empty store, a broken one ----------------------------------------------


async def test_an_empty_store_says_what_to_do_then_shows_the_first_rows(tmp_path):
    path = tmp_path / "traces.db"
    TraceStore.open(path).close()
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        assert screen.state == "empty"
        assert screen.notice is not None
        assert screen.notice.startswith(empty_store_hint())
        write(path, request(910, NOW))
        screen.poll()
        await settle(pilot)
        assert screen.notice is None
        assert shown(app) == [f"{910:032x}"]
        assert highlighted(app) == f"{910:032x}"


async def test_a_missing_store_says_what_to_do_and_waits_for_it(tmp_path):
    path = tmp_path / "traces.db"
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        assert screen.state == "missing"
        assert screen.notice is not None
        assert screen.notice.startswith(no_store_hint(path))
        screen.poll()
        await settle(pilot)
        assert not path.exists()  # a reader leaves no file behind
        seed(path, NOW)
        screen.poll()
        await settle(pilot)
        assert screen.notice is None
        assert shown(app) == SEEDED


async def test_an_unreadable_store_shows_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "traces.db"
    path.write_bytes(b"this is not a database, but it is long enough to look at " * 100)
    app = viewer(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        assert screen.state == "error"
        assert screen.notice is not None
        assert screen.notice.startswith(f"error: cannot open the trace store {path}")
        path.unlink()
        seed(path, NOW)
        await pilot.press("r")  # fixed: r tries again
        await settle(pilot)
        assert shown(app) == SEEDED


# -- the detail, the theme, quitting -----------------------------------------------------


async def test_enter_opens_the_detail_and_escape_comes_back_to_the_same_row(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TraceDetailScreen)
        assert app.screen.detail.trace_id == T_REASON
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen_of(app)
        assert highlighted(app) == T_REASON
        assert screen_of(app).table.has_focus


async def test_t_toggles_dark_and_light(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        dark = screen_of(app).table.get_component_rich_style("trace-list--header")
        await pilot.press("t")
        assert app.theme == "textual-light"
        assert screen_of(app).table.get_component_rich_style("trace-list--header") != dark
        await pilot.press("t")
        assert app.theme == "textual-dark"
    light = viewer(db, theme="light")
    async with light.run_test(size=(80, 24)):
        assert light.theme == "textual-light"


async def test_q_quits(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_q_in_the_filter_bar_is_typed_not_quit(db):
    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "q")
        assert app.is_running
        assert screen_of(app).query_one(FilterBar).query_one("Input").value == "q"  # type: ignore[attr-defined]


# -- the command line --------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_bare_traces_piped_prints_the_list(runner, db):
    result = runner.invoke(cli, ["traces", "--db", str(db), "--where", "status=502"])
    assert result.exit_code == 0, result.output
    assert T_FAIL[:12] in result.stdout
    assert T_CODE[:12] not in result.stdout
    assert "1 trace, newest first" in result.stdout


def test_bare_traces_with_a_missing_db_exits_1(runner, tmp_path, monkeypatch):
    missing = tmp_path / "nope.db"
    piped = runner.invoke(cli, ["traces", "--db", str(missing)])
    listed = runner.invoke(cli, ["traces", "list", "--db", str(missing)])
    assert piped.exit_code == listed.exit_code == 1
    monkeypatch.setattr(traces_command, "interactive", lambda: True)
    at_terminal = runner.invoke(cli, ["traces", "--db", str(missing)])
    assert at_terminal.exit_code == 1
    assert at_terminal.stderr == listed.stderr
    assert "no trace store at" in at_terminal.stderr
    assert not missing.exists()


def test_bare_traces_at_a_terminal_refuses_a_bad_where_as_list_does(runner, db, monkeypatch):
    monkeypatch.setattr(traces_command, "interactive", lambda: True)
    result = runner.invoke(cli, ["traces", "--db", str(db), "--where", "status=ok"])
    assert result.exit_code == 2
    assert "--where status: expected an HTTP status such as 200, not 'ok'" in result.stderr


def test_bare_traces_at_a_terminal_opens_the_viewer(runner, db, monkeypatch):
    monkeypatch.setattr(traces_command, "interactive", lambda: True)
    opened: list[TracesApp] = []
    monkeypatch.setattr(TracesApp, "run", lambda self: opened.append(self))
    argv = ["traces", "--db", str(db), "--since", "2h", "-w", "model=" + GPT, "--theme", "light"]
    result = runner.invoke(cli, argv)
    assert result.exit_code == 0, result.output
    (app,) = opened
    assert app.reader.path == db
    assert app.theme == "textual-light"
    assert app._view.line == f"since=2h model={GPT}"
    assert app._view.filters.where == {"model": GPT}


def test_cli_start_up_does_not_import_textual():
    code = "import sys, plano_cli.app; print('textual' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_options_before_a_subcommand_are_refused(runner, db):
    result = runner.invoke(cli, ["traces", "--db", str(db), "list"])
    assert result.exit_code == 2
    assert "after the subcommand" in result.output


async def test_a_result_for_a_widget_already_taken_down_is_dropped(db):
    from textual.widgets import Static

    calls: list[str] = []

    class Gone(Static):
        def land(self, value: str) -> None:
            calls.append(value)
            self.update(value)  # would fail on a widget no longer in the DOM

    app = viewer(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        here = Gone()
        await app.screen.mount(here)
        # As the loader threads hand results over: from another thread.
        assert await asyncio.to_thread(list_screen._deliver, app, here.land, "mounted")
        await pilot.pause()
        await here.remove()
        assert await asyncio.to_thread(list_screen._deliver, app, here.land, "removed")
        await pilot.pause()
    assert calls == ["mounted"]
