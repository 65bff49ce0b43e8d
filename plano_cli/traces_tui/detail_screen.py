"""One trace in full: a summary band, then sections (spans, calls, agent chain, messages,
routing, signals, cost, filters) switched by number keys or tab.

Everything shown comes from the trace, so it is built as rich Text, never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static, TabbedContent, TabPane, Tabs

from plano_cli.traces_cli.trace_model import span_tree
from plano_cli.traces_tui.detail_calls import calls_view
from plano_cli.traces_tui.detail_chain import chain_view
from plano_cli.traces_tui.detail_cost import cost_view
from plano_cli.traces_tui.detail_filters import filters_view
from plano_cli.traces_tui.detail_routing import routing_view
from plano_cli.traces_tui.detail_signals import signals_view
from plano_cli.traces_tui.detail_span import span_panel
from plano_cli.traces_tui.detail_summary import summary_text
from plano_cli.traces_tui.messages import messages_view
from plano_cli.traces_tui.waterfall import Ruler, Waterfall
from proxy.telemetry.store import TraceDetail

SECTIONS = ("spans", "calls", "chain", "messages", "routing", "signals", "cost", "filters")
_SECTION = Binding.Group("Section")


class SectionPane(VerticalScroll):
    """A section's body; j/k scroll it as the arrow keys do."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Scroll", key_display="j/k"),
        Binding("k", "scroll_up", "Scroll", show=False),
    ]


class SpanAttributes(SectionPane):
    """The selected span's attributes; enter gives the cursor back to the waterfall."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "screen.focus_waterfall", "Spans"),
    ]


class TraceDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab,right", "next_section", "Next", key_display="tab", group=_SECTION),
        Binding("shift+tab,left", "next_section(-1)", show=False),
        Binding(
            "1", "section('spans')", "Section", key_display=f"1-{len(SECTIONS)}", group=_SECTION
        ),
        *(
            Binding(str(n), f"section('{name}')", show=False)
            for n, name in enumerate(SECTIONS[1:], 2)
        ),
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    TraceDetailScreen { layout: vertical; }
    TraceDetailScreen > #summary {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    TraceDetailScreen > TabbedContent { height: 1fr; }
    TraceDetailScreen ContentSwitcher { height: 1fr; }
    TraceDetailScreen TabPane { height: 1fr; padding: 0; }
    TraceDetailScreen SectionPane { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    TraceDetailScreen SpanAttributes {
        border-top: solid $panel-lighten-2;
        scrollbar-gutter: stable;
    }
    TraceDetailScreen SpanAttributes:focus { border-top: solid $accent; }
    """

    def __init__(self, detail: TraceDetail) -> None:
        super().__init__()
        self.detail = detail
        self.placed = span_tree(detail)

    def compose(self) -> ComposeResult:
        yield Static(summary_text(self.detail), id="summary", markup=False)
        with TabbedContent(id="sections"):
            with TabPane("1 Spans", id="spans"):
                if self.placed:
                    ruler = Ruler()
                    yield ruler
                    yield Waterfall(self.placed, ruler, id="waterfall")
                    with SpanAttributes(id="span-attributes"):
                        yield Static(span_panel(self.placed[0]), id="span-panel")
                else:
                    yield _pane(Text("no spans stored for this trace", style="dim"))
            with TabPane("2 Calls", id="calls"):
                yield _pane(calls_view(self.detail))
            with TabPane("3 Chain", id="chain"):
                yield _pane(chain_view(self.detail))
            with TabPane("4 Messages", id="messages"):
                yield _pane(messages_view(self.detail))
            with TabPane("5 Routing", id="routing"):
                yield _pane(routing_view(self.detail))
            with TabPane("6 Signals", id="signals"):
                yield _pane(signals_view(self.detail))
            with TabPane("7 Cost", id="cost"):
                yield _pane(cost_view(self.detail))
            with TabPane("8 Filters", id="filters"):
                yield _pane(filters_view(self.detail))
        yield Footer()

    def on_mount(self) -> None:
        # Keys switch sections; a focusable tab strip would only take the cursor away.
        self.query_one(Tabs).can_focus = False
        self._focus_section("spans")

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_section(event.pane.id or "")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.query_one("#span-panel", Static).update(span_panel(self.placed[event.option_index]))
        self.query_one(SpanAttributes).scroll_home(animate=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one(SpanAttributes).focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_section(self, name: str) -> None:
        self.query_one(TabbedContent).active = name

    def action_next_section(self, step: int = 1) -> None:
        tabs = self.query_one(TabbedContent)
        here = SECTIONS.index(tabs.active) if tabs.active in SECTIONS else 0
        tabs.active = SECTIONS[(here + step) % len(SECTIONS)]

    def action_focus_waterfall(self) -> None:
        self._focus_section("spans")

    def _focus_section(self, name: str) -> None:
        pane = self.query_one(f"#{name}", TabPane)
        target = pane.query_one_optional(Waterfall) or pane.query_one_optional(SectionPane)
        if target is not None:
            target.focus()


def _pane(renderable: RenderableType) -> SectionPane:
    return SectionPane(Static(renderable, markup=False))
