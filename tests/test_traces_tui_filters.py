"""Filter decisions in `plano traces`' viewer: the detail's Filters section (key 8), the
summary band, the list's BLOCKED BY column and the filter bar's filter=/decision= keys;
on a real SQLite store of calls with filter chains (filter_seed). Screenshots too."""

from __future__ import annotations

from pathlib import Path

import pytest
from filter_seed import (
    INJECTION_MESSAGE,
    PII_DIFF,
    T_AGENT_FILTERED,
    T_BLOCKED,
    T_FAILED_OPEN,
    T_OBSERVED,
    filter_runs,
)
from test_traces_tui_detail import Host, detail_of
from test_traces_tui_detail import shown as screen_text
from test_traces_tui_list import SEEDED, line, screen_of, settle, shown, type_filter, viewer
from test_traces_tui_snapshots import loaded
from trace_seed import T_CODE, seed

from proxy.telemetry.store import TraceStore

NOW = 1_750_000_000.0
FILTERED = [T_BLOCKED, T_OBSERVED, T_FAILED_OPEN, T_AGENT_FILTERED]

pytestmark = pytest.mark.usefixtures("utc")  # conftest: local time is UTC


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    seed(path, NOW)
    with TraceStore.open(path) as store:
        for batch in filter_runs(NOW):
            store.write(batch)
    return path


@pytest.fixture
def store(db: Path):
    with TraceStore.open(db) as opened:
        yield opened


async def test_the_filters_section_lists_each_call_in_order(store):
    app = Host(detail_of(store, T_OBSERVED))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("8")
        lines = screen_text(app).splitlines()
        rows = [ln for ln in lines if ln.strip()[:1].isdigit() and "put " in ln]
        assert len(rows) == 3
        assert rows[0].split()[:4] == ["1", "input", "injection", "prompt_injection"]
        assert "block (observe)" in rows[0]
        # Whole, wrapped in its column: the viewer clips nothing.
        first = lines.index(rows[0])
        detail = rows[0].split("1.2 ms")[1].strip() + " " + lines[first + 1].strip()
        assert detail == f"HTTP 403: {INJECTION_MESSAGE}"
        assert rows[1].split()[:5] == ["2", "input", "pii", "pii", "modify"]
        assert PII_DIFF in rows[1]
        assert rows[2].split()[:5] == ["3", "output", "guard", "http", "pass"]
        assert "12 chunks, 0 modified" in rows[2]


async def test_the_band_names_the_filter_that_blocked(store):
    app = Host(detail_of(store, T_BLOCKED))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        band = "\n".join(screen_text(app).splitlines()[:3])
        assert "403" in band
        assert "blocked by injection" in band
    app = Host(detail_of(store, T_OBSERVED))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        band = "\n".join(screen_text(app).splitlines()[:3])
        assert "would block injection (observe)" in band


async def test_an_agents_filter_shows_its_target(store):
    app = Host(detail_of(store, T_AGENT_FILTERED))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("8")
        text = screen_text(app)
        assert "TARGET" in text
        assert "weather_agent" in text
        assert "HTTP 400: an api_key in the prompt" in text


async def test_a_trace_without_filters_says_so(store):
    app = Host(detail_of(store, T_CODE))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("8")
        assert "no filters: no filter ran on this trace's calls" in screen_text(app)


async def test_the_list_marks_the_traces_with_a_block(db):
    app = viewer(db)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = screen_of(app).table
        header = line(table, 0)
        assert "BLOCKED BY" in header
        assert header.index("STATUS") < header.index("BLOCKED BY")  # next to the status
        rows = shown(app)
        texts = {trace: line(table, 1 + rows.index(trace)) for trace in FILTERED}
        assert "403  injection " in texts[T_BLOCKED]
        assert "injection (observe)" in texts[T_OBSERVED]
        assert "400  pii " in texts[T_AGENT_FILTERED]
        assert "injection" not in texts[T_FAILED_OPEN]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("filter=injection decision=block", [T_BLOCKED, T_OBSERVED]),
        ("filter=pii decision=block", [T_AGENT_FILTERED]),
        ("decision=error", [T_FAILED_OPEN]),
        ("filter=pii listener=travel", [T_AGENT_FILTERED]),
    ],
)
async def test_the_filter_bar_takes_filter_and_decision(db, typed, expected):
    app = viewer(db)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        assert set(FILTERED) <= set(shown(app))
        await type_filter(pilot, typed)
        assert shown(app) == expected


async def test_a_list_without_blocks_keeps_its_columns(tmp_path):
    path = tmp_path / "traces.db"
    seed(path, NOW)
    app = viewer(path)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert shown(app) == SEEDED
        assert "BLOCKED BY" not in line(screen_of(app).table, 0)


def test_the_filters_section_at_100x30_dark(snap_compare, store):
    app = Host(detail_of(store, T_OBSERVED), "textual-dark")
    assert snap_compare(app, terminal_size=(100, 30), press=["8"])


def test_the_list_with_blocks_at_100x24_dark(snap_compare, db):
    assert snap_compare(viewer(db), terminal_size=(100, 24), run_before=loaded)
