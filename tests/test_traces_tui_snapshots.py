"""Screenshots (SVG) of `plano traces`' trace list: 80x24 dark, 120x40 light, and the
filter bar refusing a filter. A fixed clock and time zone, and no live polling, make them
the same on every run; `pytest --snapshot-update` writes them anew after a wanted change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from trace_seed import seed

from plano_cli.traces_tui.app import TracesApp

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


pytestmark = pytest.mark.usefixtures("utc")  # conftest: local time is UTC


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    seed(path, NOW)
    return path


def viewer(path: Path, **options: object) -> TracesApp:
    return TracesApp(path, now=lambda: NOW, poll_s=None, **options)  # type: ignore[arg-type]


async def loaded(pilot: Pilot) -> None:
    """The first page in, and the filter's cursor still (a blink would differ by run)."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


def test_the_list_at_80x24_dark(snap_compare, db):
    assert snap_compare(viewer(db), terminal_size=(80, 24), run_before=loaded)


def test_the_list_at_120x40_light(snap_compare, db):
    app = viewer(db, theme="light")
    assert snap_compare(app, terminal_size=(120, 40), press=["j"], run_before=loaded)


def test_the_filter_bar_with_an_error(snap_compare, db):
    press = ["slash", *"status=ok", "enter"]
    assert snap_compare(viewer(db), terminal_size=(80, 24), press=press, run_before=loaded)
