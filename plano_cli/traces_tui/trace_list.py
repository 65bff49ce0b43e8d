"""The trace list: traces (their calls added up), newest first, drawn one line at a time.

Drawn with textual's line API rather than a DataTable: rows arrive at both ends (pages at
the bottom, live traces at the top or, when they finished late, in their sorted place) and
change in place (a trace's new call), which a DataTable can only do by re-sorting every
row, and only the lines on screen are drawn, so a long list costs no more to show than a
short one.

The cursor follows its trace, not its index: rows inserted above move it down with its
trace, and the view keeps the row at its top unless it is at the very top (where the
newest requests show up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from plano_cli.traces_tui.list_columns import Cell, Layout, plan, row_cells, widths
from plano_cli.traces_tui.loader import order
from proxy.telemetry.store import TraceRow

# When the cursor or the view comes this close to the last row loaded, ask for more.
PREFETCH = 50
_HEADER = 1  # lines


@dataclass(slots=True)
class _Entry:
    row: TraceRow
    cells: dict[str, Cell]

    @property
    def key(self) -> tuple[float, str]:
        return order(self.row)


class TraceList(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "cursor_down", "Move", key_display="j/k"),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("home,g", "first", "Top", show=False),
        Binding("end,G", "last", "Bottom", show=False),
        Binding("enter", "select", "Open"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trace-list--header",
        "trace-list--cursor",
        "trace-list--ok",
        "trace-list--warn",
        "trace-list--error",
        "trace-list--dim",
    }
    DEFAULT_CSS = """
    TraceList {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    TraceList > .trace-list--header { text-style: bold; background: $panel; }
    TraceList > .trace-list--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    TraceList:focus > .trace-list--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    TraceList > .trace-list--ok { color: $text-success; }
    TraceList > .trace-list--warn { color: $text-warning; }
    TraceList > .trace-list--error { color: $text-error; }
    TraceList > .trace-list--dim { color: $text-muted; }
    """

    class Highlighted(Message):
        """The cursor is on another trace (None: the list is empty)."""

        def __init__(self, row: TraceRow | None) -> None:
            super().__init__()
            self.row = row

    class Selected(Message):
        """Enter (or a double click) on a trace."""

        def __init__(self, row: TraceRow) -> None:
            super().__init__()
            self.row = row

    class NearEnd(Message):
        """The cursor or the view is close to the last row loaded."""

    def __init__(self, *, clock: Callable[[], float], id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock  # TIME shows the time of day for today's requests
        self._entries: list[_Entry] = []
        self._ids: set[str] = set()
        self._measured: dict[str, int] = {}
        self._layout: Layout | None = None
        self.cursor = 0

    # -- what is loaded ---------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._entries)

    @property
    def rows(self) -> list[TraceRow]:
        return [entry.row for entry in self._entries]

    @property
    def highlighted(self) -> TraceRow | None:
        return self._entries[self.cursor].row if self._entries else None

    @property
    def last_key(self) -> tuple[float, str] | None:
        """The keyset cursor of the next page: the oldest row loaded."""
        return self._entries[-1].key if self._entries else None

    @property
    def layout(self) -> Layout | None:
        return self._layout

    def replace(self, rows: Iterable[TraceRow], keep: str | None = None) -> None:
        """A new first page: the cursor on the trace `keep` if it is in it, else on top."""
        self._entries = []
        self._ids = set()
        self._measured = {}
        self._add(rows)
        ids = [entry.row.trace_id for entry in self._entries]
        self.cursor = ids.index(keep) if keep in ids else 0
        self._resized()
        self.scroll_to(y=0, animate=False)
        self._scroll_to_cursor()
        self.post_message(self.Highlighted(self.highlighted))

    def append(self, rows: Iterable[TraceRow]) -> int:
        """The next page, older than every row loaded. Returns how many were new."""
        was_empty = not self._entries
        added = self._add(rows)
        self._resized()
        if was_empty and added:
            self.post_message(self.Highlighted(self.highlighted))
        return added

    def insert(self, rows: Iterable[TraceRow], *, complete: bool) -> int:
        """New traces, each in its sorted place, and traces already listed brought up to
        date (a new call). Unless the list is `complete` (no page left to load), new rows
        older than the last one loaded are left to the paging, which brings them in order.
        Returns how many rows were inserted or changed."""
        last = self.last_key
        by_id = {entry.row.trace_id: entry for entry in self._entries}
        fresh: list[TraceRow] = []
        changed: list[TraceRow] = []
        for row in rows:
            if row.trace_id in by_id:
                changed.append(row)
            elif complete or last is None or order(row) > last:
                fresh.append(row)
        if not fresh and not changed:
            return 0
        was_empty = not self._entries
        top = round(self.scroll_y)
        top_id = self._entries[top].row.trace_id if 0 < top < len(self._entries) else None
        cursor_id = self.highlighted.trace_id if self._entries else None
        now = self._clock()
        for row in changed:
            entry = by_id[row.trace_id]
            entry.row, entry.cells = row, row_cells(row, now)
            self._measure(entry.cells)
        self._add(fresh)
        self._entries.sort(key=lambda entry: entry.key, reverse=True)
        ids = [entry.row.trace_id for entry in self._entries]
        if cursor_id is not None:
            self.cursor = ids.index(cursor_id)
        self._resized()
        if top_id is not None:
            # Scrolled down: the rows in view stay in view, whatever arrived above them.
            self.scroll_to(y=ids.index(top_id), animate=False)
        if was_empty:
            self.post_message(self.Highlighted(self.highlighted))
        return len(fresh) + len(changed)

    def trim(self, keep: int) -> int:
        """Forget the rows after the first `keep`: the paging reads them again if the
        cursor goes there. Returns how many went."""
        gone = self._entries[keep:]
        if not gone:
            return 0
        del self._entries[keep:]
        self._ids.difference_update(entry.row.trace_id for entry in gone)
        self.cursor = min(self.cursor, max(keep - 1, 0))
        self._resized()
        return len(gone)

    @property
    def last_shown(self) -> int:
        """The index of the last row the view can show."""
        return round(self.scroll_y) + self._visible_rows - 1

    def _add(self, rows: Iterable[TraceRow]) -> int:
        added = 0
        now = self._clock()
        for row in rows:
            if row.trace_id in self._ids:
                continue
            cells = row_cells(row, now)
            self._entries.append(_Entry(row, cells))
            self._ids.add(row.trace_id)
            self._measure(cells)
            added += 1
        return added

    def _measure(self, cells: dict[str, Cell]) -> None:
        measured = self._measured
        for name, width in widths(cells).items():
            if width > measured.get(name, 0):
                measured[name] = width

    # -- layout and drawing -----------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._resized()

    def _resized(self) -> None:
        width = self.scrollable_content_region.width
        self._layout = plan(width, self._measured) if width > 0 else None
        self.virtual_size = Size(width, len(self._entries) + _HEADER)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        layout = self._layout
        if layout is None:
            return Strip.blank(width, base)
        if y == 0:
            header = self.get_component_rich_style("trace-list--header")
            names = {name: name for name in layout.names}
            return self._strip(layout, names, {}, header, width, tones=False)
        index = round(self.scroll_y) + y - _HEADER
        if index >= len(self._entries):
            return Strip.blank(width, base)
        entry = self._entries[index]
        texts = {name: cell.text for name, cell in entry.cells.items()}
        if index == self.cursor:
            style = self.get_component_rich_style("trace-list--cursor")
            return self._strip(layout, texts, entry.cells, style, width, tones=False)
        return self._strip(layout, texts, entry.cells, base, width, tones=True)

    def _strip(
        self,
        layout: Layout,
        texts: dict[str, str],
        cells: dict[str, Cell],
        style: Style,
        width: int,
        *,
        tones: bool,
    ) -> Strip:
        segments = [Segment(" ", style)]
        for i, (name, text) in enumerate(layout.line(texts)):
            if i:
                segments.append(Segment("  ", style))
            tone = cells[name].tone if tones and name in cells else ""
            if tone:
                # Only the color, as blended on the background (a partial style would
                # leave a translucent color such as $text-muted unblended: white).
                color = self.get_component_rich_style(f"trace-list--{tone}").color
                segments.append(Segment(text, style + Style(color=color)))
            else:
                segments.append(Segment(text, style))
        return Strip(segments).crop_extend(0, width, style)

    # -- the cursor ---------------------------------------------------------------------------

    @property
    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - _HEADER)

    def move_cursor(self, index: int) -> None:
        if not self._entries:
            return
        index = max(0, min(index, len(self._entries) - 1))
        if index != self.cursor:
            self.cursor = index
            self.post_message(self.Highlighted(self.highlighted))
        self._scroll_to_cursor()
        self.refresh()
        if self.near_end():
            self.post_message(self.NearEnd())

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + self._visible_rows:
            self.scroll_to(y=self.cursor - self._visible_rows + 1, animate=False)

    def near_end(self) -> bool:
        return max(self.cursor, self.last_shown) >= len(self._entries) - PREFETCH

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._entries and self.near_end():
            self.post_message(self.NearEnd())

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self._visible_rows)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self._visible_rows)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._entries) - 1)

    def action_select(self) -> None:
        if (row := self.highlighted) is not None:
            self.post_message(self.Selected(row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < _HEADER:
            return
        index = round(self.scroll_y) + offset.y - _HEADER
        if index < len(self._entries):
            self.move_cursor(index)
            if event.chain >= 2:
                self.action_select()
