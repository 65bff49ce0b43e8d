"""Screenshots of the trace detail screen, compared with the accepted ones in
__snapshots__/ (pytest-textual-snapshot; refresh with --snapshot-update after checking)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from trace_seed import T_AGENT, T_CHAIN, T_CODE, chain_runs, seed

from plano_cli.traces_tui.detail_screen import TraceDetailScreen
from proxy.telemetry.store import TraceDetail, TraceStore

NOW = 1_750_000_000.0  # fixed, so that nothing in a screenshot depends on the day it ran


class Host(App[None]):
    def __init__(self, detail: TraceDetail, theme: str) -> None:
        super().__init__()
        self.detail = detail
        self.start_theme = theme

    def on_mount(self) -> None:
        self.theme = self.start_theme
        self.push_screen(TraceDetailScreen(self.detail))


pytestmark = pytest.mark.usefixtures("utc")  # conftest: local time is UTC


def seeded(path: Path, trace_id: str) -> TraceDetail:
    seed(path, NOW)
    with TraceStore.open(path) as store:
        for batch in chain_runs(NOW):
            store.write(batch)
        detail = store.get_trace(trace_id)
    assert detail is not None
    return detail


@pytest.fixture
def code_trace(tmp_path: Path) -> TraceDetail:
    return seeded(tmp_path / "traces.db", T_CODE)


@pytest.fixture
def agent_run(tmp_path: Path) -> TraceDetail:
    return seeded(tmp_path / "traces.db", T_AGENT)


def test_spans_at_80x24_dark(snap_compare, code_trace):
    assert snap_compare(Host(code_trace, "textual-dark"), terminal_size=(80, 24))


def test_messages_at_80x24_dark(snap_compare, code_trace):
    assert snap_compare(Host(code_trace, "textual-dark"), terminal_size=(80, 24), press=["4"])


def test_routing_at_120x40_light(snap_compare, code_trace):
    assert snap_compare(Host(code_trace, "textual-light"), terminal_size=(120, 40), press=["5"])


def test_an_agents_calls_at_100x30_dark(snap_compare, agent_run):
    assert snap_compare(Host(agent_run, "textual-dark"), terminal_size=(100, 30), press=["2"])


def test_an_agent_chain_at_100x30_dark(snap_compare, tmp_path):
    chain = seeded(tmp_path / "traces.db", T_CHAIN)
    assert snap_compare(Host(chain, "textual-dark"), terminal_size=(100, 30), press=["3"])
