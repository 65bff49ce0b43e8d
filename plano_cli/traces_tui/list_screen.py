"""The viewer's main screen: the trace list, its filter bar and status line.

Every store read runs in a thread worker (loader, live) and hands its result back to the
UI thread. A new filter or a reload starts a new generation: results of an older one,
still on their way, are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, Literal

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from plano_cli.traces_cli.access import empty_store_hint, no_store_hint
from plano_cli.traces_cli.args import Filters
from plano_cli.traces_cli.fmt import short_id
from plano_cli.traces_tui.filter_bar import FilterBar
from plano_cli.traces_tui.filter_text import ViewFilter
from plano_cli.traces_tui.live import LiveFeed
from plano_cli.traces_tui.loader import Page, StoreReader, StoreUnreadable
from plano_cli.traces_tui.status_line import ListStatus, StatusLine
from plano_cli.traces_tui.trace_list import TraceList
from proxy.telemetry.store import TraceDetail, TraceRow

State = Literal["loading", "rows", "missing", "empty", "no-match", "error"]
# Live rows pile up on a busy gateway: past this many loaded, while the user is near the
# top, the oldest are let go (to half of it); scrolling down pages them back in.
LIVE_MAX = 5_000
WAITING = "The list appears here as soon as the gateway writes a trace."


class TraceListScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "open_filter", "Filter", key_display="/"),
        Binding("p", "toggle_live", "Pause"),
        Binding("r", "reload", "Reload"),
    ]
    DEFAULT_CSS = """
    TraceListScreen { layout: vertical; }
    TraceListScreen > #notice {
        height: 1fr;
        width: 1fr;
        content-align: center middle;
        text-align: center;
        padding: 0 4;
        display: none;
    }
    TraceListScreen.-notice > #notice { display: block; }
    TraceListScreen.-notice > TraceList { display: none; }
    """

    def __init__(
        self,
        reader: StoreReader,
        view: ViewFilter,
        *,
        clock: Callable[[], float],
        poll_s: float | None,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._view = view
        self._clock = clock
        self._poll_s = poll_s
        self._generation = 0
        self._feed: LiveFeed | None = None
        self.state: State = "loading"
        self._more = False
        self._paging = False
        self._opening: str | None = None
        self._live = True
        self._held: dict[str, TraceRow] = {}  # polled while paused, the latest of each
        self._overflow = False  # more were held than are worth keeping
        self.notice: str | None = None  # what shows instead of the list, if anything

    def compose(self) -> ComposeResult:
        yield FilterBar(self._clock)
        yield TraceList(clock=self._clock)
        yield Static(id="notice", markup=False)
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.reload()
        if self._poll_s:
            self.set_interval(self._poll_s, self.poll)

    def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    @property
    def table(self) -> TraceList:
        return self.query_one(TraceList)

    @property
    def view(self) -> ViewFilter:
        return self._view

    @property
    def live(self) -> bool:
        return self._live

    # -- the first page ---------------------------------------------------------------------

    def reload(self, keep: str | None = None) -> None:
        """Read the first page again (a new filter, `r`, the store appearing)."""
        self._generation += 1
        old, self._feed = self._feed, None
        self.state = "loading"
        self._paging = False
        self._held = {}
        self._overflow = False
        self._refresh_status()
        work = partial(self._read_first, self.app, self._generation, self._view.filters, old, keep)
        self.run_worker(work, thread=True, group="first")

    def _read_first(
        self,
        app: App[Any],
        generation: int,
        filters: Filters,
        old: LiveFeed | None,
        keep: str | None,
    ) -> None:
        if old is not None:
            old.close()
        reader = self._reader
        if not reader.exists():
            _deliver(app, self._show_notice, generation, "missing")
            return
        feed: LiveFeed | None = None
        try:
            # Primed before the page is read: a call written in between is then in
            # the page or in the next poll, never in neither.
            feed = LiveFeed(reader, filters, now=self._clock())
            feed.prime()
            page = reader.page(filters)
            empty = not page.rows and reader.is_empty()
        except StoreUnreadable as exc:
            if feed is not None:
                feed.close()
            _deliver(app, self._show_notice, generation, "error", str(exc))
            return
        if not _deliver(app, self._first_page, generation, feed, page, empty, keep):
            feed.close()

    def _first_page(
        self, generation: int, feed: LiveFeed, page: Page, empty: bool, keep: str | None
    ) -> None:
        if generation != self._generation:
            self.run_worker(feed.close, thread=True, group="close")
            return
        self._feed = feed
        self._more = page.more
        self.table.replace(page.rows, keep)
        if page.rows:
            self._show_rows()
        else:
            self._show_notice(generation, "empty" if empty else "no-match")
        self._load_next_if_near_end()

    # -- what shows instead of rows -------------------------------------------------------

    def _show_notice(self, generation: int, state: State, message: str = "") -> None:
        if generation != self._generation:
            return
        self.state = state
        if state == "missing":
            text = f"{no_store_hint(self._reader.path)}\n\n{WAITING}"
        elif state == "empty":
            text = f"{empty_store_hint()}\n\n{WAITING}"
        elif state == "no-match":
            text = f"no traces match: {self._view.line}\n\npress / to change the filter"
        else:
            text = f"error: {message}\n\npress r to try again"
        self.notice = text
        self.query_one("#notice", Static).update(Content(text))
        self.add_class("-notice")
        self._refresh_status()

    def _show_rows(self) -> None:
        self.state = "rows"
        self.notice = None
        self.remove_class("-notice")
        self._refresh_status()

    # -- paging ---------------------------------------------------------------------------

    def on_trace_list_near_end(self, _: TraceList.NearEnd) -> None:
        self._load_next_if_near_end()

    def _load_next_if_near_end(self) -> None:
        table = self.table
        if not (self._more and not self._paging and self.state == "rows" and table.near_end()):
            return
        self._paging = True
        self._refresh_status()
        work = partial(
            self._read_page, self.app, self._generation, self._view.filters, table.last_key
        )
        self.run_worker(work, thread=True, group="page")

    def _read_page(
        self,
        app: App[Any],
        generation: int,
        filters: Filters,
        before: tuple[float, str] | None,
    ) -> None:
        try:
            page = self._reader.page(filters, before)
        except StoreUnreadable as exc:
            _deliver(app, self._show_notice, generation, "error", str(exc))
            return
        _deliver(app, self._next_page, generation, page)

    def _next_page(self, generation: int, page: Page) -> None:
        if generation != self._generation:
            return
        self._paging = False
        self._more = page.more
        self.table.append(page.rows)
        self._refresh_status()
        self._load_next_if_near_end()

    # -- live update ----------------------------------------------------------------------

    def poll(self) -> None:
        """One live update: new and changed traces into the list (held back while paused, to count
        them), or a store that has appeared. Runs every `poll_s` seconds; tests call it."""
        if self.state == "missing":
            if self._reader.exists():  # a stat, not a read: fine on this thread
                self.reload()
            return
        feed = self._feed
        if feed is None or self.state in ("loading", "error"):
            return
        work = partial(self._read_new, self.app, self._generation, feed)
        self.run_worker(work, thread=True, group="poll")

    def _read_new(self, app: App[Any], generation: int, feed: LiveFeed) -> None:
        try:
            rows = feed.poll()
        except StoreUnreadable as exc:
            _deliver(app, self._show_notice, generation, "error", str(exc))
            return
        if rows:
            _deliver(app, self._polled, generation, rows)

    def _polled(self, generation: int, rows: list[TraceRow]) -> None:
        if generation != self._generation:
            return  # the new generation's first page has them
        if not self._live:
            self._held.update((row.trace_id, row) for row in rows)
            if len(self._held) > LIVE_MAX:
                self._overflow = True  # resuming reloads instead: the first page has them
                self._held = {}
            self._refresh_status()
            return
        self._insert(rows)

    def _insert(self, rows: list[TraceRow]) -> None:
        table = self.table
        if table.insert(rows, complete=not self._more) and self.state != "rows":
            self._show_rows()
        keep = LIVE_MAX // 2
        near_top = max(table.cursor, table.last_shown) < keep
        # Not while a page is on its way: it continues from the old last row.
        if table.row_count > LIVE_MAX and near_top and not self._paging:
            table.trim(keep)
            self._more = True
        self._refresh_status()

    def action_toggle_live(self) -> None:
        self._live = not self._live
        if self._live and self._overflow:
            self.action_reload()
            return
        if self._live and self._held:
            held, self._held = self._held, {}
            self._insert(list(held.values()))
        self._refresh_status()
        if self._live:
            self.poll()

    # -- keys -----------------------------------------------------------------------------

    def action_reload(self) -> None:
        row = self.table.highlighted
        self.reload(keep=row.trace_id if row is not None else None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the filter is typed, its keys are text: the footer shows enter and esc.
        return not (action == "open_filter" and self.query_one(FilterBar).is_open)

    def action_open_filter(self) -> None:
        self.query_one(FilterBar).open(self._view.line)
        self.refresh_bindings()

    def on_filter_bar_applied(self, event: FilterBar.Applied) -> None:
        self._view = event.view
        self.reload()

    def on_filter_bar_closed(self, _: FilterBar.Closed) -> None:
        self.table.focus()
        self.refresh_bindings()

    # -- the detail -----------------------------------------------------------------------

    def on_trace_list_selected(self, event: TraceList.Selected) -> None:
        if self._opening is not None:
            return  # one at a time: a second enter would stack two screens
        trace_id = event.row.trace_id
        self._opening = trace_id
        self.run_worker(partial(self._read_trace, self.app, trace_id), thread=True, group="detail")

    def _read_trace(self, app: App[Any], trace_id: str) -> None:
        # Imported here, off the UI thread, not at start-up: the list opens sooner.
        from plano_cli.traces_tui import detail_screen  # noqa: F401

        try:
            detail = self._reader.trace(trace_id)
        except StoreUnreadable as exc:
            _deliver(app, self._detail_failed, str(exc))
            return
        _deliver(app, self._open_detail, trace_id, detail)

    def _open_detail(self, trace_id: str, detail: TraceDetail | None) -> None:
        self._opening = None
        if detail is None:
            self._detail_failed(f"trace {short_id(trace_id)} is no longer in the store")
        elif self.app.screen is self:
            from plano_cli.traces_tui.detail_screen import TraceDetailScreen  # loaded: cheap

            self.app.push_screen(TraceDetailScreen(detail))

    def _detail_failed(self, message: str) -> None:
        self._opening = None
        self.notify(message, severity="error")

    # -- the status line ------------------------------------------------------------------

    def _refresh_status(self) -> None:
        status = ListStatus(
            live=self._live,
            filter_line=self._view.line,
            loaded=self.table.row_count if self.state == "rows" else 0,
            more=self._more and self.state == "rows",
            loading=self.state == "loading" or self._paging,
            waiting=LIVE_MAX if self._overflow else len(self._held),
            waiting_more=self._overflow,
        )
        self.query_one(StatusLine).show(status)


def _deliver(app: App[Any], callback: Callable[..., object], *args: object) -> bool:
    """Run `callback` on the UI thread; False when the app has gone (it was quitting)."""

    def on_ui_thread() -> None:
        # A result that lands while the app shuts down finds the screen taken apart
        # (its status line already gone): it is dropped, not raised as a traceback.
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, Widget) and not owner.is_attached:
            return
        callback(*args)

    try:
        app.call_from_thread(on_ui_thread)
    except RuntimeError:
        return False
    return True
