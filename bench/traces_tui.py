"""How fast `plano traces`' interactive viewer is on a store of 100,000 requests.

    python bench/traces_tui.py [--requests 100000] [--db PATH] [--runs 5] [--keys 1000]
                               [--json PATH]

1. Open time, in a real terminal: `python -m plano_cli traces --db PATH` spawned in a
   detached tmux session (80x24 and 120x40, and 80x24 on a 10-request store), timed from
   the spawn to the first trace row in `tmux capture-pane` (polled every ~10 ms). For
   comparison: `plano traces list -n 50` (process wall time, piped), the viewer's imports
   alone, and `python -c pass` (the interpreter's floor).
2. Scrolling, in process (textual's headless driver, 120x40, no live polling): `j` over
   `--keys` rows with the keys back to back (the UI thread never idles), `j` at a held
   key's repeat rate (30/s), page down, and `G`, each key timed from its event to the
   frame rendered; every page load the scrolling caused, timed from the list asking for
   it to the page in the list. A key that did not move the cursor (it was at the last row
   loaded, the next page late) is counted as stalled.
3. Filtering: enter on a filter to its first page in the list.
4. Live update: 100 new requests written to the store, timed from the poll to the rows
   in the list.

In process, a key is posted as the terminal driver would post it and timed until every
message queue is drained and the screen's repaint (which textual runs on a 60 Hz timer) is
done; headless, nothing is written to a terminal. textual has no public event for "frame
rendered", nor the list for "page loaded": both are read through private methods, on the
running instances only (see `key()` and `PageLoads`).

Repeated measures report the median and the max (p99 too where there are hundreds).
`--db PATH` reuses a store (or creates it there, to reuse next time); without it the
store is generated in a temporary directory with bench/trace_store.py's `synthetic()`.
Writes bench/results/traces_tui.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from trace_store import synthetic  # noqa: E402

from proxy.telemetry.store import StoreBatch, TraceStore  # noqa: E402

OUT = ROOT / "bench" / "results" / "traces_tui.json"
SIZES = ((80, 24), (120, 40))
CAPTURE_EVERY_S = 0.01
OPEN_DEADLINE_S = 30.0
# A list row starts with its time: today's, this year's or an older date.
ROW = re.compile(r"^ (\d\d:\d\d:\d\d|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d|\d{4}-\d\d-\d\d)\s")
FILTERS = (
    "model=gpt-4o",
    "status=500",
    "min_latency_ms=1000",
    "has_signals=true",
    "lorem ipsum",  # text in 1 request of 10: the first page comes from the newest ~2,000
    "question 4240:",  # text in one request: the search reads every captured message
)
LIVE_BATCH = 100
# A held key's repeat rate (X11's default is 25/s, macOS's fastest ~30/s), and enough
# presses at it to cross two page loads.
REPEAT_HZ = 30
REPEAT_KEYS = 400
TMUX_CONF = """\
set-option -g status off
set-option -s escape-time 0
set-option -s exit-empty off
"""
Summary = dict[str, Any]


def summary(values_ms: list[float], *, p99: bool = False) -> Summary:
    ordered = sorted(values_ms)
    out: Summary = {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "max_ms": round(ordered[-1], 2),
    }
    if p99:
        out["p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)
    if len(ordered) <= 20:
        out["runs_ms"] = [round(v, 2) for v in values_ms]
    return out


# -- the store ---------------------------------------------------------------------------


def ensure_store(path: Path, requests: int) -> dict[str, Any]:
    """The store at `path`, generated unless it already holds requests."""
    if path.exists():
        with sqlite3.connect(path) as conn:
            count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        if count:
            return {"reused": True, "requests": count, "db_mb": _mb(path)}
    started = time.perf_counter()
    # max_requests: the writer's pruning must not cut the store short of N.
    with TraceStore.open(path, max_requests=max(requests, 100_000)) as store:
        for batch in synthetic(requests, spans=4, batch=500):
            store.write(batch)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a gateway at rest leaves it
    return {
        "reused": False,
        "requests": requests,
        "generate_s": round(time.perf_counter() - started, 1),
        "db_mb": _mb(path),
    }


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 1)


def fresh_requests(count: int, seed: int) -> StoreBatch:
    """`count` requests that started just now (the live feed looks at recent starts),
    with ids no other batch has (synthetic's ids come from its seed)."""
    batch = next(synthetic(count, spans=4, batch=count, seed=seed))
    now = time.time()
    batch.requests = [
        dataclasses.replace(row, started_at=now - i * 0.001) for i, row in enumerate(batch.requests)
    ]
    return batch


# -- 1. open time in a real terminal -----------------------------------------------------


class Tmux:
    """A private tmux server (its own socket and config): no user's tmux is touched."""

    def __init__(self, workdir: Path) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise SystemExit("tmux is not on PATH (apt-get install tmux): needed for open times")
        self.tmux = tmux
        self.socket = str(workdir / "tmux.sock")  # in the temporary directory: removed with it
        self.conf = workdir / "tmux.conf"
        self.conf.write_text(TMUX_CONF)
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.run("start-server")

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [self.tmux, "-S", self.socket, "-f", str(self.conf), *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        self.run("kill-server", check=False)

    def time_to_first_row(self, command: list[str], width: int, height: int) -> float:
        """ms from spawning `command` in a new session to a list row on its screen."""
        name = f"open-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        self.run(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
            "-c", str(ROOT), shlex.join(command),
        )  # fmt: skip
        try:
            while True:
                screen = self.run("capture-pane", "-p", "-t", name, check=False)
                if any(ROW.match(line) for line in screen.splitlines()):
                    return (time.perf_counter() - started) * 1000
                if time.perf_counter() - started > OPEN_DEADLINE_S:
                    raise RuntimeError(f"no trace row after {OPEN_DEADLINE_S} s:\n{screen}")
                time.sleep(CAPTURE_EVERY_S)
        finally:
            self._quit(name)

    def _quit(self, name: str) -> None:
        # q, and the next run starts only when this viewer is gone (not competing for CPU).
        self.run("send-keys", "-t", name, "q", check=False)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            if subprocess.run(
                [self.tmux, "-S", self.socket, "has-session", "-t", name],
                capture_output=True,
                env=self.env,
                check=False,
            ).returncode:
                return
            time.sleep(0.02)
        self.run("kill-session", "-t", name, check=False)


def viewer_command(db: Path) -> list[str]:
    return [
        "env", "-u", "NO_COLOR", "-u", "COLUMNS", "-u", "LINES", "TERM=xterm-256color",
        sys.executable, "-m", "plano_cli", "traces", "--db", str(db),
    ]  # fmt: skip


def wall_ms(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
    return (time.perf_counter() - started) * 1000


def measure_open(db: Path, small: Path, runs: int, workdir: Path) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    tmux = Tmux(workdir)
    try:
        cases = [(f"viewer_tmux_{w}x{h}", db, w, h) for w, h in SIZES]
        cases.append(("viewer_tmux_80x24_small_store", small, 80, 24))
        for label, path, width, height in cases:
            command = viewer_command(path)
            tmux.time_to_first_row(command, width, height)  # warm-up: the page cache
            out[label] = summary(
                [tmux.time_to_first_row(command, width, height) for _ in range(runs)]
            )
    finally:
        tmux.close()
    python = sys.executable
    commands = {
        "list_cli_n50": [python, "-m", "plano_cli", "traces", "list", "--db", str(db), "-n", "50"],
        "viewer_imports": [python, "-c", "import plano_cli.traces_tui.app"],
        "python_floor": [python, "-c", "pass"],
    }
    for label, command in commands.items():
        wall_ms(command)
        out[label] = summary([wall_ms(command) for _ in range(runs)])
    return out


# -- 2-4. in process, with textual's headless driver ---------------------------------------


async def in_process(db: Path, runs: int, keys: int) -> dict[str, Any]:
    # Imported here: the open-time runs above must not have paid for textual.
    from textual import events

    from plano_cli.traces_tui.app import TracesApp
    from plano_cli.traces_tui.filter_bar import FilterBar, FilterInput

    app = TracesApp(db, poll_s=None)
    reads: list[float] = []
    page = app.reader.page

    def timed_page(*args: Any, **kwargs: Any) -> Any:
        # The store's read of one page, in the loader's worker thread.
        started = time.perf_counter()
        try:
            return page(*args, **kwargs)
        finally:
            reads.append((time.perf_counter() - started) * 1000)

    app.reader.page = timed_page  # type: ignore[method-assign]

    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.list_screen
        table = screen.table
        if screen.state != "rows":
            raise RuntimeError(f"the viewer shows no rows: {screen.state} {screen.notice}")
        first_page_read = reads[0]
        loads = PageLoads(screen)

        async def key(name: str, character: str | None = None) -> float:
            """ms from the key event to its frame rendered. Pilot.press is not used: it
            waits for the process to idle (>= 40 ms a key), which would be most of it."""
            started = time.perf_counter()
            event = events.Key(name, character)
            event.set_sender(app)
            app.post_message(event)
            await settled_messages(pilot)
            # The repaint textual's screen timer would do (<= 1/60 s later): done now, so
            # that its cost is counted, not the wait for the timer. Headless, nothing is
            # written to a terminal: that part is in the tmux open times only.
            app.screen._on_timer_update()
            return (time.perf_counter() - started) * 1000

        # A key with no binding: what posting and dispatching a key costs, at least.
        floor = [await key("x", "x") for _ in range(200)]

        # j held down: `keys` rows, waiting for the loader every 100 as a slower key
        # repeat would (a real one is ~30 keys a second, far slower than this loop).
        j_ms: list[float] = []
        stalled = 0
        for pressed in range(keys):
            before = table.cursor
            j_ms.append(await key("j", "j"))
            stalled += table.cursor == before  # at the last row loaded, a page late
            if pressed % 100 == 99:
                await settle(pilot)
        await settle(pilot)
        j_loads = loads.take()
        scrolled = {"cursor": table.cursor, "loaded": table.row_count, "stalled_keys": stalled}

        # j at a keyboard's repeat rate, from a reloaded first page: the UI thread idles
        # between keys, as it does for a person, so the loader is not starved of the GIL
        # as it is above (keys back to back keep the UI thread busy all the time).
        await key("r", "r")
        await settle(pilot)
        loads.take()
        paced: list[float] = []
        paced_stalled = 0
        next_at = time.perf_counter()
        for _ in range(REPEAT_KEYS):
            before = table.cursor
            paced.append(await key("j", "j"))
            paced_stalled += table.cursor == before
            next_at += 1 / REPEAT_HZ
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await settle(pilot)
        paced_loads = loads.take()
        paced_scroll = {"cursor": table.cursor, "stalled_keys": paced_stalled}

        await key("g", "g")
        await settle(pilot)
        page_down: list[float] = []
        for pressed in range(100):
            page_down.append(await key("pagedown"))
            if pressed % 5 == 4:
                await settle(pilot)
        await settle(pilot)
        page_down_loads = loads.take()
        paged = {"cursor": table.cursor, "loaded": table.row_count}

        # G: the last row loaded, which asks for the next page; timed to that page shown.
        g_key: list[float] = []
        g_page: list[float] = []
        for _ in range(runs):
            loaded = table.row_count
            started = time.perf_counter()
            g_key.append(await key("G", "G"))
            await until(lambda loaded=loaded: table.row_count > loaded)
            app.screen._on_timer_update()
            g_page.append((time.perf_counter() - started) * 1000)
            await settle(pilot)
        g_loads = loads.take()

        bar = screen.query_one(FilterBar)
        field = bar.query_one(FilterInput)

        async def apply(line: str) -> tuple[float, int, str]:
            await key("slash", "/")
            field.value = line  # typing is not what is timed
            started = time.perf_counter()
            await key("enter")
            await until(lambda: screen.view.line == line and screen.state != "loading")
            app.screen._on_timer_update()
            elapsed = (time.perf_counter() - started) * 1000
            await settle(pilot)
            return elapsed, table.row_count if screen.state == "rows" else 0, screen.state

        filtered: dict[str, Summary] = {}
        for line in FILTERS:
            times: list[float] = []
            for _ in range(runs):
                await apply("")  # from the unfiltered list each time
                elapsed, rows, state = await apply(line)
                times.append(elapsed)
            filtered[line] = {**summary(times), "rows_in_first_page": rows, "state": state}
        await apply("")

        writes: list[float] = []
        shown: list[float] = []
        with TraceStore.open(db, max_requests=10_000_000) as writer:
            for run in range(runs):
                batch = fresh_requests(LIVE_BATCH, seed=1_000 + run + int(time.time()))
                ids = {row.trace_id for row in batch.requests}
                started = time.perf_counter()
                writer.write(batch)
                writes.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                screen.poll()
                await until(lambda ids=ids: ids <= {row.trace_id for row in table.rows})
                app.screen._on_timer_update()
                shown.append((time.perf_counter() - started) * 1000)
                await settle(pilot)
        live = {
            "write_100_ms": summary(writes),
            "poll_to_shown_ms": summary(shown),
            "loaded_after": table.row_count,
        }

    return {
        "first_page_read_ms": round(first_page_read, 2),
        "key_floor": summary(floor, p99=True),
        "j": {**summary(j_ms, p99=True), **scrolled},
        "j_page_loads": j_loads,
        f"j_at_{REPEAT_HZ}hz": {**summary(paced, p99=True), **paced_scroll},
        f"j_at_{REPEAT_HZ}hz_page_loads": paced_loads,
        "pagedown": {**summary(page_down, p99=True), **paged},
        "pagedown_page_loads": page_down_loads,
        "G_key": summary(g_key),
        "G_to_next_page_shown": summary(g_page),
        "G_page_loads": g_loads,
        "page_read_ms_all": summary(reads[1:], p99=True) if len(reads) > 1 else None,
        "filter": filtered,
        "live": live,
    }


class PageLoads:
    """Times each page load from the moment the list asks for it (paging starts) to the
    page appended, and the append itself (UI thread). There is no public event for either:
    this wraps two of TraceListScreen's private methods, on this instance only."""

    def __init__(self, screen: Any) -> None:
        self._screen = screen
        self._asked: list[float] = []
        self._done: list[tuple[float, float]] = []  # (latency, apply) ms
        ask, apply = screen._load_next_if_near_end, screen._next_page

        def load_next() -> None:
            was = screen._paging
            ask()
            if screen._paging and not was:
                self._asked.append(time.perf_counter())

        def next_page(*args: Any) -> None:
            started = time.perf_counter()
            apply(*args)
            end = time.perf_counter()
            if self._asked:
                asked = self._asked.pop(0)
                self._done.append(((end - asked) * 1000, (end - started) * 1000))

        screen._load_next_if_near_end = load_next
        screen._next_page = next_page

    def take(self) -> Summary | None:
        done, self._done = self._done, []
        if not done:
            return None
        return {
            "pages": len(done),
            "ask_to_shown": summary([latency for latency, _ in done]),
            "append": summary([applied for _, applied in done]),
        }


async def settled_messages(pilot: Any) -> None:
    """Every message queue drained, without Pilot's idle sleeps. Three rounds: the key goes
    from the app to the focused widget, which posts messages (Highlighted, NearEnd) that
    bubble to the screen, each hop after the previous round's marker."""
    for _ in range(3):
        await pilot._wait_for_screen()


async def settle(pilot: Any) -> None:
    """Until no worker runs (the loader idle): each result may start another."""
    for _ in range(100):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            return
    raise RuntimeError("the viewer's workers never settled")


async def until(ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Polls every ms (a worker's result arrives through the event loop, which this
    sleep lets run)."""
    deadline = time.perf_counter() + timeout_s
    while not ready():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.001)


# -- the report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    tmux = shutil.which("tmux")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "textual": importlib.metadata.version("textual"),
        "tmux": _output([tmux, "-V"]) if tmux else None,
        "platform": platform.platform(),
        "commit": _output(["git", "rev-parse", "--short", "HEAD"]),
        # The machine is shared: the load around the run says how much to trust it.
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _output(command: list[str]) -> str | None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def markdown(result: dict[str, Any]) -> str:
    rows: list[tuple[str, Summary | None]] = []
    opened = result["open"]
    n = result["store"]["requests"]
    for w, h in SIZES:
        label = f"open: `plano traces` to first row, tmux {w}x{h}, {n:,} requests"
        rows.append((label, opened[f"viewer_tmux_{w}x{h}"]))
    rows += [
        ("open: the same, tmux 80x24, 10 requests", opened["viewer_tmux_80x24_small_store"]),
        ("`plano traces list -n 50` (process, piped)", opened["list_cli_n50"]),
        ('`python -c "import plano_cli.traces_tui.app"`', opened["viewer_imports"]),
        ("`python -c pass` (floor)", opened["python_floor"]),
    ]
    ui = result["in_process"]
    rows += [
        ("key with no binding, event to frame (floor)", ui["key_floor"]),
        (
            f"`j` x{ui['j']['n']} back to back, event to frame ({ui['j']['stalled_keys']} stalled)",
            ui["j"],
        ),
        ("  page loads during `j`: ask to shown", (ui["j_page_loads"] or {}).get("ask_to_shown")),
        ("  page loads during `j`: append (UI thread)", (ui["j_page_loads"] or {}).get("append")),
        (
            f"`j` x{REPEAT_KEYS} at {REPEAT_HZ}/s, event to frame"
            f" ({ui[f'j_at_{REPEAT_HZ}hz']['stalled_keys']} stalled)",
            ui[f"j_at_{REPEAT_HZ}hz"],
        ),
        (
            f"  page loads during `j` at {REPEAT_HZ}/s: ask to shown",
            (ui[f"j_at_{REPEAT_HZ}hz_page_loads"] or {}).get("ask_to_shown"),
        ),
        ("`pagedown` x100, event to frame", ui["pagedown"]),
        (
            "  page loads during `pagedown`: ask to shown",
            (ui["pagedown_page_loads"] or {}).get("ask_to_shown"),
        ),
        ("`G`, event to frame", ui["G_key"]),
        ("`G` to the next page shown", ui["G_to_next_page_shown"]),
        ("page read (SQLite, worker thread), all pages", ui["page_read_ms_all"]),
    ]
    for line, timing in ui["filter"].items():
        label = f"filter `{line}`: enter to first page ({timing['rows_in_first_page']} rows)"
        rows.append((label, timing))
    live = ui["live"]
    rows += [
        (f"live: write {LIVE_BATCH} requests (TraceStore.write)", live["write_100_ms"]),
        (f"live: poll to the {LIVE_BATCH} rows shown", live["poll_to_shown_ms"]),
    ]
    out = ["| measure | median ms | p99 ms | max ms | n |", "|---|---:|---:|---:|---:|"]
    for label, timing in rows:
        if timing is None:
            out.append(f"| {label} | - | - | - | 0 |")
            continue
        p99 = timing.get("p99_ms")
        out.append(
            f"| {label} | {timing['median_ms']:.1f} | {'-' if p99 is None else f'{p99:.1f}'}"
            f" | {timing['max_ms']:.1f} | {timing['n']} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="reuse this store (created there if absent)")
    parser.add_argument("--runs", type=int, default=5, help="repeats of each measure")
    parser.add_argument("--keys", type=int, default=1000, help="j presses")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()

    info = machine()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = args.db or workdir / "traces.db"
        store = ensure_store(db, args.requests)
        small = workdir / "small.db"
        ensure_store(small, 10)
        opened = measure_open(db, small, args.runs, workdir)
        ui = asyncio.run(in_process(db, args.runs, args.keys))
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/traces_tui.py", *sys.argv[1:]]),
        "store": {**store, "path": args.db.name if args.db else None},  # no machine paths
        "open": opened,
        "in_process": ui,
        "machine": info,
    }
    table = markdown(result)
    print(table)
    result["markdown"] = table
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
