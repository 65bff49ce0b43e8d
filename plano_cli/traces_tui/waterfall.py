"""The span waterfall: one line a span, in tree order, with a bar on the trace's timeline.

The bars and tree rails are the ones `plano traces show` draws; here they are sized to the
widget and a cursor moves through the spans.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.widgets import OptionList, Static

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.render_show import Glyphs, timeline_bar, timeline_scale, tree_label
from plano_cli.traces_cli.trace_model import PlacedSpan, trace_span_ms

GLYPHS = Glyphs(unicode=True)
MARK = 2  # "✗ " before a failed span
TIME = 8  # each of the start and duration columns
MIN_NAME, MIN_BAR = 12, 8
SCROLLBAR = 1


def columns(labels: list[str], width: int) -> tuple[int, int]:
    """(name width, bar width) for a line `width` cells wide: names get what they need up to
    two fifths of the line, the bar the rest."""
    fixed = MARK + 2 + TIME + 1 + TIME + 2
    longest = max((len(label) for label in labels), default=MIN_NAME)
    name = max(MIN_NAME, min(longest, (width * 2) // 5))
    return name, max(MIN_BAR, width - fixed - name)


def header_line(total: float, name: int, bar: int) -> Text:
    start, duration = "start", "duration"
    line = f"{'':<{MARK + name}}  {start:>{TIME}} {duration:>{TIME}}  {timeline_scale(total, bar)}"
    return Text(line, style="dim", no_wrap=True, overflow="ellipsis")


def span_line(p: PlacedSpan, label: str, total: float, name: int, bar: int) -> Text:
    error = p.span.status_code == "error"
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append("✗ " if error else "  ", style="bold red")
    line.append(f"{fmt.clip_label(label, name):<{name}}  ", style="red" if error else "")
    line.append(f"{'+' + fmt.duration_ms(p.offset_ms):>{TIME}} ", style="dim")
    line.append(f"{fmt.duration_ms(p.duration_ms):>{TIME}}  ")
    line.append(timeline_bar(p, total, GLYPHS, bar), style="red" if error else "blue")
    return line


class Ruler(Static):
    """The line above the waterfall: column names and the trace's time scale."""

    DEFAULT_CSS = f"""
    Ruler {{ height: 1; padding-right: {SCROLLBAR}; }}
    """

    def __init__(self) -> None:
        super().__init__(markup=False)


class Waterfall(OptionList):
    """The spans as a list the cursor moves through; enter selects the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # "down" first: it is OptionList's first binding, so the footer lists this one first.
        Binding("down,j", "cursor_down", "Span", key_display="j/k"),
        Binding("up,k", "cursor_up", "Span", show=False),
        Binding("enter", "select", "Attributes"),
    ]
    DEFAULT_CSS = """
    Waterfall {
        border: none;
        padding: 0;
        height: auto;
        /* Of the terminal: a percentage of the auto-sized view would not bound it, and
           the cursor would move off the visible lines. 40vh leaves the attributes half. */
        max-height: 40vh;
        scrollbar-size-vertical: 1;
        background: $surface;
        & > .option-list--option { padding: 0; }
    }
    Waterfall:focus { border: none; }
    """

    def __init__(self, placed: list[PlacedSpan], ruler: Ruler, *, id: str | None = None):
        self.placed = placed
        self._labels = [tree_label(p, GLYPHS) for p in placed]
        self._total = trace_span_ms(placed)
        self._ruler = ruler
        self._width = 0
        # Markup off: span names and attributes are the trace's data, never markup.
        super().__init__(*self._span_lines(80 - SCROLLBAR), markup=False, id=id)

    def _span_lines(self, width: int) -> list[Text]:
        """The lines for this width; the ruler is set to match them."""
        name, bar = columns(self._labels, width)
        self._ruler.update(header_line(self._total, name, bar))
        return [
            span_line(p, label, self._total, name, bar)
            for p, label in zip(self.placed, self._labels, strict=True)
        ]

    def on_resize(self, event: Resize) -> None:
        # The bars fill the width, so a new width means new lines. One column is kept for
        # the scrollbar a long trace gets, so that lines and ruler stay aligned with it.
        width = self.size.width - SCROLLBAR
        if width > 0 and width != self._width:
            self._width = width
            for i, line in enumerate(self._span_lines(width)):
                self.replace_option_prompt_at_index(i, line)
