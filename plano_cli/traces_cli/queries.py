"""A read TraceStore has no method for: trace ids by prefix, on a read-only connection
of our own."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class QueryError(Exception):
    pass


def trace_ids_with_prefix(path: Path, prefix: str, limit: int = 6) -> list[str]:
    """Ids starting with a lowercase hex prefix, in calls or spans (a trace whose summary
    is not written yet has only spans).

    Any reader may open the file (WAL: it never blocks the writer). Ids are lowercase hex,
    all below '~', so [prefix, prefix + '~') holds exactly the ids that start with it, and
    that range walks the primary key's index instead of scanning the table.
    """
    bounds = (prefix, prefix + "~")
    sql = (
        "SELECT trace_id FROM requests WHERE trace_id >= ? AND trace_id < ?"
        " UNION SELECT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ?"
        " ORDER BY 1 LIMIT ?"
    )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    try:
        return [row[0] for row in conn.execute(sql, [*bounds, *bounds, limit])]
    except sqlite3.Error as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()
