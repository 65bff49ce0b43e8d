"""The line under the list: live or paused, the filter, and how much is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static


@dataclass(slots=True)
class ListStatus:
    live: bool = True
    filter_line: str = ""
    loaded: int = 0
    more: bool = False  # older traces not loaded yet
    loading: bool = False
    waiting: int = 0  # new or changed traces held back while paused
    waiting_more: bool = False  # ... and more than that


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def show(self, status: ListStatus) -> None:
        self.update(status_content(status))


def status_content(status: ListStatus) -> Content:
    if status.live:
        state = Content.from_markup("[$text-success]● live[/]")
    else:
        more = "+" if status.waiting_more else ""
        waiting = f" ({status.waiting:,}{more} new)" if status.waiting else ""
        state = Content.from_markup("[$text-warning]❚❚ paused$waiting[/]", waiting=waiting)
    if status.filter_line:
        shown = Content.from_markup("filter: [$foreground]$line[/]", line=status.filter_line)
    else:
        shown = Content("all traces")
    count = f"{status.loaded} loaded" + (", more below" if status.more else "")
    if status.loading:
        count += " · loading…"
    # The filter last: it is the part that may not fit.
    return Content(" │ ").join([state, Content(count), shown])
