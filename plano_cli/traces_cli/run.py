"""Each `plano traces` command from parsed options to an exit code.

Exit codes: 0 done (an empty store included), 1 the store or the trace cannot be found or
read, 2 a usage error (a bad --since or --where).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal, cast

from rich.text import Text

from plano_cli.traces_cli import fmt, tail
from plano_cli.traces_cli.access import (
    AccessError,
    empty_store_hint,
    find_trace,
    no_store_hint,
    open_store,
    store_path,
)
from plano_cli.traces_cli.args import ArgumentError, Filters, parse_since, parse_where
from plano_cli.traces_cli.keys import TAIL_KEYS
from plano_cli.traces_cli.output import (
    err_console,
    print_error,
    print_json_line,
    print_jsonl,
    print_usage_error,
    stdout_console,
)
from plano_cli.traces_cli.payloads import list_json, request_json, stats_json, stats_total
from proxy.telemetry.store import TraceStore

OK, NOT_FOUND, USAGE = 0, 1, 2
Grouping = Literal["model", "route"]
GROUPINGS: tuple[Grouping, ...] = ("model", "route")
_TAIL_NO_TEXT = (
    ": tail reads call summaries, without messages or spans"
    " (list --where text=…, agent=…, filter=… and decision=… can)"
)
_USAGE = {
    "list": "plano traces list [--since 30m] [--where key=value]... [--limit N] [--json]",
    "stats": "plano traces stats [--by model|route] [--since 30m] [--where key=value]... [--json]",
    "tail": "plano traces tail [--since 30m] [--where key=value]... [--limit N] [--json]",
}


def _exit_codes(command: Callable[..., int]) -> Callable[..., int]:
    """The failures every command shares, as messages and exit codes."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> int:
        try:
            return command(*args, **kwargs)
        except AccessError as exc:
            print_error(str(exc))
            return NOT_FOUND
        except BrokenPipeError:  # `plano traces list | head`: the reader left, which is fine
            _silence_stdout()
            return OK

    return run


@_exit_codes
def run_list(
    db: Path | None, since: str | None, where: list[str] | None, limit: int, as_json: bool
) -> int:
    filters = _filters("list", since, where)
    if filters is None:
        return USAGE
    store = open_store(db)
    if store is None:
        return _no_store(db, as_json, lambda: print_json_line(list_json([], False)))
    with store:
        rows = store.list_traces(**filters.store_kwargs(), limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        if as_json:
            print_json_line(list_json(rows, more))
        if not rows:
            _nothing(store, filters, as_json, "traces")
        elif not as_json:
            from plano_cli.traces_cli.render_list import render_list

            render_list(rows, stdout_console(), more=more)
    return OK


@_exit_codes
def run_show(db: Path | None, trace_id: str, as_json: bool, full: bool) -> int:
    store = open_store(db)
    if store is None:
        print_error(f"no trace {trace_id!r}: {no_store_hint(store_path(db))}")
        return NOT_FOUND
    with store:
        try:
            detail = find_trace(store, trace_id)
        except AccessError as exc:
            hint = f"; {empty_store_hint()}" if store.count() == 0 else ""
            raise AccessError(f"{exc}{hint}") from None
    if as_json:
        from plano_cli.traces_cli.payloads import trace_json

        print_json_line(trace_json(detail))
    else:
        from plano_cli.traces_cli.render_show import render_show

        render_show(detail, stdout_console(), full=full)
    return OK


@_exit_codes
def run_stats(
    db: Path | None,
    since: str | None,
    where: list[str] | None,
    by: str | None,
    limit: int | None,
    as_json: bool,
) -> int:
    filters = _filters("stats", since, where)
    if filters is None:
        return USAGE
    groupings = (cast(Grouping, by),) if by else GROUPINGS
    store = open_store(db)
    if store is None:
        empty = stats_json({g: [] for g in groupings}, stats_total([]))
        return _no_store(db, as_json, lambda: print_json_line(empty))
    with store:
        tables = {g: store.stats(**filters.store_kwargs(), group_by=g) for g in groupings}
        if not tables[groupings[0]]:
            if as_json:
                print_json_line(stats_json(tables, stats_total([])))
            _nothing(store, filters, as_json, "calls")
            return OK
    # Every table covers the same calls: any one gives the totals.
    total = stats_total(tables[groupings[0]])
    hidden: dict[str, int] = {}
    if limit is not None:
        hidden = {g: max(0, len(t) - limit) for g, t in tables.items()}
        tables = {g: t[:limit] for g, t in tables.items()}
    if as_json:
        print_json_line(stats_json(tables, total))
    else:
        from plano_cli.traces_cli.render_stats import render_stats

        since_text = None if filters.since is None else fmt.local_time(filters.since)
        render_stats(tables, total, stdout_console(), hidden=hidden, since_text=since_text)
    return OK


@_exit_codes
def run_tail(
    db: Path | None,
    since: str | None,
    where: list[str] | None,
    limit: int | None,
    as_json: bool,
    window_s: float | None,
) -> int:
    filters = _filters("tail", since, where)
    if filters is None:
        return USAGE
    err = err_console()
    try:
        store = open_store(db)
        if store is None:  # the default store, not made yet: the gateway will make it
            path = store_path(db)
            err.print(
                Text(f"waiting for {path}: start the gateway with `plano up` (Ctrl-C to stop)")
            )
            while (store := open_store(db)) is None:
                tail.pause(tail.POLL_S)
        with store:
            tailer = tail.Tailer(store, since=filters.since, window_s=window_s or tail.WINDOW_S)
            tailer.prime()
            err.print(Text(f"following {store.path} (Ctrl-C to stop)", style="dim"))
            tail.follow(tailer, _tail_emitter(as_json), keep=filters.matches, limit=limit)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a tail is meant to end
    return OK


def _tail_emitter(as_json: bool) -> Callable[..., None]:
    if as_json:
        return lambda row: print_jsonl(request_json(row))
    from plano_cli.traces_cli.render_list import tail_line

    out = stdout_console()
    return lambda row: out.print(tail_line(row), soft_wrap=True)


def _filters(command: str, since: str | None, where: list[str] | None) -> Filters | None:
    try:
        if command == "tail":
            filters = parse_where(where, TAIL_KEYS, why_not=_TAIL_NO_TEXT)
        else:
            filters = parse_where(where)
        filters.since = parse_since(since)
    except ArgumentError as exc:
        print_usage_error(str(exc), _USAGE[command])
        return None
    return filters


def _no_store(db: Path | None, as_json: bool, print_empty: Callable[[], None]) -> int:
    """The default store does not exist yet: nothing to show, and what to do about it."""
    hint = no_store_hint(store_path(db))
    if as_json:
        print_empty()  # scripts still get a document of the usual shape
        err_console().print(Text(hint))
    else:
        stdout_console().print(Text(hint))
    return OK


def _nothing(store: TraceStore, filters: Filters, as_json: bool, what: str) -> None:
    if store.count() == 0:
        message = empty_store_hint()
    else:
        message = f"no {what} match"
        if filters.since is not None:
            message += f" since {fmt.full_local_time(filters.since)}"
        if filters.where or filters.has_extras:
            message += " with these --where filters"
    (err_console() if as_json else stdout_console()).print(Text(message))


def _silence_stdout() -> None:
    # Python would report the failed flush of stdout at exit otherwise.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
