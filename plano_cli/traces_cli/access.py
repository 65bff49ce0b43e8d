"""Opening the trace store for reading, and finding a trace by a prefix of its id."""

from __future__ import annotations

import string
from pathlib import Path

from plano_cli.traces_cli.queries import QueryError, trace_ids_with_prefix
from proxy.paths import default_trace_store
from proxy.telemetry.store import TraceDetail, TraceStore, TraceStoreError

# As git: shorter prefixes match too much to be what anyone meant.
MIN_PREFIX = 4
_HEX = frozenset(string.hexdigits.lower())
NEXT_STEP = "start the gateway with `plano up`, send a request, then run `plano traces` again"


class AccessError(Exception):
    """The store cannot be read, or the trace asked for is not in it: exit 1."""


def store_path(db: Path | None) -> Path:
    return db.expanduser() if db is not None else default_trace_store()


def open_store(db: Path | None) -> TraceStore | None:
    """The store to read, or None when the default one does not exist yet.

    A missing default file is not created: a reader should leave no file behind, and the
    gateway makes it on its first trace. A missing --db file is an error, since its path
    was chosen on purpose (and a typo should not silently read nothing).
    """
    path = store_path(db)
    if not path.exists():
        if db is not None:
            raise AccessError(missing_db_message(path))
        return None
    try:
        return TraceStore.open(path, read_only=True)
    except TraceStoreError as exc:
        raise AccessError(str(exc)) from None


def missing_db_message(path: Path) -> str:
    return (
        f"no trace store at {path} (--db): check the path, e.g. the "
        "tracing.store.path of your config, or leave --db out for the default"
    )


def no_store_hint(path: Path) -> str:
    return f"no traces yet: {path} does not exist. To fill it, {NEXT_STEP} (or use --db PATH)."


def empty_store_hint() -> str:
    return f"no traces yet: {NEXT_STEP}."


def find_trace(store: TraceStore, given: str) -> TraceDetail:
    """The trace with this id or, as git does, the one whose id starts with it.

    Raises AccessError when none or several match.
    """
    key = given.strip().lower()
    detail = store.get_trace(given) or (store.get_trace(key) if key != given else None)
    if detail is not None:
        return detail
    if len(key) >= MIN_PREFIX and set(key) <= _HEX:
        try:
            ids = trace_ids_with_prefix(store.path, key)
        except QueryError as exc:
            raise AccessError(str(exc)) from None
        if len(ids) == 1:
            found = store.get_trace(ids[0])
            if found is not None:  # pruned between the two reads: reported as not found
                return found
        elif len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            raise AccessError(f"trace id prefix {given!r} is ambiguous: {shown}")
    raise AccessError(f"no trace {given!r} in {store.path}")
