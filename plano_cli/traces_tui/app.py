"""`plano traces`' interactive viewer: the trace list, and one trace in full on enter."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from plano_cli.traces_tui.filter_text import ViewFilter
from plano_cli.traces_tui.list_screen import TraceListScreen
from plano_cli.traces_tui.loader import PAGE, StoreReader

POLL_S = 1.0
ThemeName = Literal["dark", "light"]
THEMES: dict[ThemeName, str] = {"dark": "textual-dark", "light": "textual-light"}


class TracesApp(App[None]):
    TITLE = "plano traces"
    # Its ctrl+p entry would crowd the footer's keys at 80 columns, for little.
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        path: Path,
        *,
        view: ViewFilter | None = None,
        theme: ThemeName = "dark",
        now: Callable[[], float] = time.time,
        poll_s: float | None = POLL_S,
        page_size: int = PAGE,
    ) -> None:
        """`now`: the clock (times shown as "today", `since=30m`); `poll_s`: seconds between
        live updates, None for none (then `TraceListScreen.poll()` runs one)."""
        super().__init__()
        self.reader = StoreReader(path, page_size=page_size)
        self._view = view or ViewFilter()
        self._now = now
        self._poll_s = poll_s
        self.theme = THEMES[theme]

    def get_default_screen(self) -> Screen[None]:
        return TraceListScreen(self.reader, self._view, clock=self._now, poll_s=self._poll_s)

    @property
    def list_screen(self) -> TraceListScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, TraceListScreen)
        return screen

    def action_toggle_theme(self) -> None:
        dark = self.current_theme.dark
        self.theme = THEMES["light"] if dark else THEMES["dark"]

    def on_unmount(self) -> None:
        self.reader.close()
