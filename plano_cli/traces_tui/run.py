"""A bare `plano traces` at a terminal: from the command line's options to the viewer.

Exit codes as `plano traces list`: 0 done, 1 a `--db` that does not exist, 2 a bad
`--since` or `--where`. A store that exists but cannot be read opens the viewer anyway,
which says so (and `r` retries).
"""

from __future__ import annotations

from pathlib import Path

from plano_cli.traces_cli.access import missing_db_message, store_path
from plano_cli.traces_cli.args import ArgumentError, parse_since, parse_where
from plano_cli.traces_cli.output import print_error, print_usage_error
from plano_cli.traces_tui.filter_text import ViewFilter, filter_line

OK, NOT_FOUND, USAGE = 0, 1, 2
USAGE_LINE = "plano traces [--db PATH] [--since 30m] [--where key=value]... [--theme dark|light]"


def run_viewer(
    db: Path | None, since: str | None, where: list[str] | None, theme: str = "dark"
) -> int:
    try:
        filters = parse_where(where)
        filters.since = parse_since(since)
    except ArgumentError as exc:
        print_usage_error(str(exc), USAGE_LINE)
        return USAGE
    path = store_path(db)
    if db is not None and not path.exists():
        print_error(missing_db_message(path))
        return NOT_FOUND
    # textual loads only now: the scriptable commands never pay for it.
    from plano_cli.traces_tui.app import TracesApp

    view = ViewFilter(filter_line(since, where), filters)
    TracesApp(path, view=view, theme="light" if theme == "light" else "dark").run()
    return OK
