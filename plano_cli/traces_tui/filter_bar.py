"""The filter bar: `/` opens it on the current filter, enter applies, esc cancels.

A bad filter is not applied: its message (the CLI's) shows under the line, and the list
keeps the filter it had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Static

from plano_cli.traces_tui.filter_text import ArgumentError, ViewFilter, parse_filter

PLACEHOLDER = "model=… status=502 since=30m min_latency_ms=2000 has_signals=true words…"


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "submit", "Apply")]


class FilterBar(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="esc"),
    ]
    DEFAULT_CSS = """
    FilterBar { height: auto; display: none; background: $panel; }
    FilterBar.-open { display: block; }
    FilterBar > #filter-line { height: 1; }
    FilterBar #filter-prompt { width: auto; padding: 0 1; color: $text-accent; text-style: bold; }
    FilterBar FilterInput { width: 1fr; }
    FilterBar > #filter-error { color: $text-error; padding: 0 1; display: none; }
    FilterBar.-invalid > #filter-error { display: block; }
    """

    class Applied(Message):
        def __init__(self, view: ViewFilter) -> None:
            super().__init__()
            self.view = view

    class Closed(Message):
        """The bar closed, applied or not: the list takes the keys back."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock  # what `since=30m` counts back from
        self.error: str | None = None  # the message for the filter last entered, if refused

    def compose(self) -> ComposeResult:
        with Horizontal(id="filter-line"):
            yield Static("filter", id="filter-prompt")
            yield FilterInput(placeholder=PLACEHOLDER, compact=True, select_on_focus=False)
        yield Static(id="filter-error", markup=False)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, line: str) -> None:
        field = self.query_one(FilterInput)
        field.value = line
        field.cursor_position = len(line)
        self._show_error(None)
        self.add_class("-open")
        field.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self._show_error(None)
        self.post_message(self.Closed())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply(event.value)

    def apply(self, line: str) -> None:
        try:
            view = parse_filter(line, self._clock())
        except ArgumentError as exc:
            self._show_error(f"error: {exc}")
            return
        self.post_message(self.Applied(view))
        self.close()

    def action_cancel(self) -> None:
        self.close()

    def _show_error(self, message: str | None) -> None:
        self.error = message
        self.query_one("#filter-error", Static).update(Content(message or ""))
        self.set_class(message is not None, "-invalid")
