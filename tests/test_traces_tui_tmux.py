"""`plano traces`' viewer in a real terminal: the command run in a detached tmux session,
driven with `tmux send-keys` and read back with `tmux capture-pane`.

The Pilot tests (test_traces_tui_list.py, test_traces_tui_detail.py) drive the app in
process, on textual's headless driver. This smoke test covers what they cannot: the
command line's TTY check letting the viewer open, textual's real driver and its escape
sequences, the keys as a terminal sends them (escape included), and the exit status once
`q` has restored the terminal.

Each test runs its own tmux server (`-S`, a socket of its own, and a config file of its
own, so neither the user's tmux nor their ~/.tmux.conf is involved) and kills it after.
Every wait polls the screen against a deadline: a slow machine waits longer, it does not
fail, and nothing here asserts a duration.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO
from trace_seed import CLAUDE, GPT, T_CODE, T_REASON, seed

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None,
    reason="tmux is not on PATH (apt-get install tmux): this test drives the viewer in a real "
    "terminal that tmux provides",
)

# Generous: the first start of a cold interpreter on a busy CI runner takes seconds.
DEADLINE_S = 30.0
POLL_S = 0.05
# The private server's settings: no status bar (the pane gets every row of the window),
# a pane whose command ended stays (its last screen can be read), and escape reaches the
# app at once.
TMUX_CONF = """\
set-option -g status off
set-option -g remain-on-exit on
set-option -s escape-time 0
set-option -g history-limit 0
"""
TIME = r"(\d\d:\d\d:\d\d|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d|\d{4}-\d\d-\d\d)"
ROW = re.compile(rf"^ {TIME}\s")
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
# The empty filter bar's placeholder begins so (filter_bar.PLACEHOLDER).
PLACEHOLDER_START = "model=…"
RIGHT_ALIGNED = frozenset({"CALLS", "STATUS", "LATENCY", "TTFT", "TOKENS", "COST"})
LIST_KEYS = ("j/k Move", "Open", "/ Filter", "p Pause", "r Reload", "t Theme", "q Quit")
ALL_COLUMNS = (
    "TIME",
    "LISTENER",
    "ROUTE",
    "MODEL",
    "CALLS",
    "STATUS",
    "LATENCY",
    "TTFT",
    "TOKENS",
    "COST",
    "SIGNALS",
)


class Terminal:
    """One tmux server with one session running one command."""

    def __init__(self, workdir: Path) -> None:
        assert TMUX is not None
        self._tmux = TMUX
        # A socket of its own, in a directory of its own (tmux leaves the socket file
        # behind), short enough for a socket's path limit, which tmp_path may not be.
        self._dir = Path(tempfile.mkdtemp(prefix="plano-tmux-"))
        self.socket = str(self._dir / "sock")
        self.session = "viewer"
        self._conf = workdir / "tmux.conf"
        self._conf.write_text(TMUX_CONF)
        self._status = workdir / "exit-status"
        # Not the tmux this test may itself run in: a client inside one would talk to it.
        self._env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            [self._tmux, "-S", self.socket, "-f", str(self._conf), *args],
            capture_output=True,
            text=True,
            env=self._env,
            timeout=DEADLINE_S,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: list[str], width: int, height: int) -> None:
        """Runs `command` in the session, and then writes its exit status to a file.

        Not tmux's #{pane_dead_status}: tmux 3.3a, on a busy machine, may mark the pane dead
        and leave its process unreaped (a zombie) for many seconds, the status unknown.
        """
        script = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self._status))}"
        self.tmux(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(REPO),
            script,
        )

    def close(self) -> None:
        # The server and everything in it: the viewer too, if a test failed before `q`.
        subprocess.run(
            [self._tmux, "-S", self.socket, "kill-server"],
            capture_output=True,
            env=self._env,
            timeout=DEADLINE_S,
            check=False,
        )
        shutil.rmtree(self._dir, ignore_errors=True)

    def keys(self, *keys: str) -> None:
        """Keys by tmux's names (`Enter`, `Escape`, `C-u`) or single characters."""
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def screen(self, *, escapes: bool = False) -> str:
        """The pane's text now; with `escapes`, with its colors as SGR sequences."""
        flags = ["-e"] if escapes else []
        return self.tmux("capture-pane", "-p", *flags, "-t", self.session)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        try:
            text = self._status.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") else None  # not half written

    def wait_for_exit(self) -> int:
        deadline = time.monotonic() + DEADLINE_S
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {DEADLINE_S:.0f} s:\n{self.screen()}")
            time.sleep(POLL_S)
        return status

    def wait_for(self, what: str, ready: Callable[[str], bool], *, escapes: bool = False) -> str:
        """The screen once `ready` accepts it; fails with the last screen at the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            text = self.screen(escapes=escapes)
            if ready(text):
                return text
            if (status := self.exit_status()) is not None:
                raise AssertionError(
                    f"the viewer exited ({status}) while waiting for {what}:\n{text}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {DEADLINE_S:.0f} s; the screen:\n{text}")
            time.sleep(POLL_S)

    def wait_for_text(self, *texts: str) -> str:
        return self.wait_for(
            " and ".join(repr(t) for t in texts), lambda s: all(t in s for t in texts)
        )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    # The real clock: the command has no way to be given another, and the list shows times
    # relative to it (the seed's requests are 10 s to 3 days old).
    seed(path, time.time())
    return path


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def viewer_command(db: Path, home: Path) -> list[str]:
    # env, not tmux's -e: it can also unset what would change the output (NO_COLOR drops
    # the colors the highlight test reads; COLUMNS/LINES would override the pane's size).
    return [
        "env",
        "-u",
        "NO_COLOR",
        "-u",
        "COLUMNS",
        "-u",
        "LINES",
        "TERM=xterm-256color",
        "TZ=UTC",
        f"PLANO_HOME={home}",
        sys.executable,
        "-m",
        "plano_cli",
        "traces",
        "--db",
        str(db),
    ]


def open_viewer(terminal: Terminal, db: Path, width: int = 80, height: int = 24) -> str:
    """Starts the viewer; returns the screen once the list is in (its 5 rows loaded)."""
    terminal.start(viewer_command(db, db.parent / "home"), width, height)
    return terminal.wait_for_text("5 loaded", "Quit")


def open_viewer_escaped(terminal: Terminal, db: Path) -> str:
    """open_viewer's screen with its colors (`capture-pane -e`)."""
    open_viewer(terminal, db)
    return terminal.screen(escapes=True)


# -- reading the screen ------------------------------------------------------------------


def bar_line(screen: str) -> str | None:
    """What the open filter bar holds ("" when empty: its placeholder shows), or None when
    it is closed. It is the screen's first line, after its prompt."""
    first = screen.split("\n", 1)[0]
    if not first.startswith(" filter "):
        return None
    text = first.removeprefix(" filter ").strip()
    return "" if text.startswith(PLACEHOLDER_START) else text


def plain(capture: str) -> str:
    return SGR.sub("", capture)


def header_line(screen: str) -> str:
    for line in screen.splitlines():
        if line.split()[:1] == ["TIME"]:
            return line
    raise AssertionError(f"no list header on the screen:\n{screen}")


def row_lines(screen: str) -> list[str]:
    """The list's rows: the lines that start with a time, under the header."""
    return [line for line in screen.splitlines() if ROW.match(line)]


def column(screen: str, name: str) -> list[str]:
    """Each row's cell in the column headed `name`.

    Headers are aligned as their cells are: a right-aligned column's cells end where its
    header ends, a left-aligned one's start where its header starts. So a column ends where
    a right-aligned one's header ends, or where the next column's header starts.
    """
    header = header_line(screen)
    words = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", header)]
    names = [word for word, _, _ in words]
    i = names.index(name)
    begin = 0 if i == 0 else _boundary(words[i - 1], words[i])
    # The last column runs to the line's end (capture-pane drops trailing blanks).
    end = None if i == len(words) - 1 else _boundary(words[i], words[i + 1])
    return [line[begin:end].strip() for line in row_lines(screen)]


def _boundary(left: tuple[str, int, int], right: tuple[str, int, int]) -> int:
    return left[2] if left[0] in RIGHT_ALIGNED else right[1]


def background_at_line_starts(capture: str) -> list[str]:
    """The background color of each line's first cell, from `capture-pane -e` text.

    tmux writes an SGR sequence only where the style changes, from one line into the next
    too, so the state is followed through the whole capture.
    """
    background = "default"
    starts: list[str] = []
    for line in capture.split("\n"):
        first: str | None = None
        at = 0
        for match in SGR.finditer(line):
            if first is None and match.start() > at:
                first = background  # a visible character came before this sequence
            background = _apply_sgr(background, match.group(1))
            at = match.end()
        starts.append(first if first is not None else background)
    return starts


def _apply_sgr(background: str, params: str) -> str:
    if ":" in params:  # ITU form, 48:2::r:g:b: one parameter of its own
        return params if params.startswith("48") else background
    codes = params.split(";") if params else ["0"]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code in ("38", "48"):
            size = 3 if codes[i + 1 : i + 2] == ["5"] else 5
            if code == "48":
                background = ";".join(codes[i : i + size])
            i += size
            continue
        if code in ("", "0", "49"):
            background = "default"
        elif code.isdigit() and (40 <= int(code) <= 47 or 100 <= int(code) <= 107):
            background = code
        i += 1
    return background


def background_of(capture: str, text: str) -> str:
    plain = [SGR.sub("", line) for line in capture.split("\n")]
    starts = background_at_line_starts(capture)
    found = [starts[i] for i, line in enumerate(plain) if text in line]
    assert len(found) == 1, f"{text!r} is on {len(found)} lines, not one"
    return found[0]


# -- the tests ---------------------------------------------------------------------------


def test_the_list_shows_the_stored_requests_and_the_keys(terminal, db):
    screen = open_viewer(terminal, db)
    assert header_line(screen).split() == [
        "TIME",
        "ROUTE",
        "MODEL",
        "STATUS",
        "LATENCY",
        "COST",
        "SIG",
    ]
    assert column(screen, "STATUS") == ["200", "200", "502", "200!", "429"]
    models = column(screen, "MODEL")
    expected = [GPT, CLAUDE, GPT, "2 models", GPT]  # the agent's run: Claude and GPT
    assert len(models) == len(expected)
    for shown, model in zip(models, expected, strict=True):
        # A name cut to fit ends with an ellipsis; what is left of it is the model's.
        assert model.startswith(shown.removesuffix("…")), (shown, model)
        assert shown == model or len(shown.removesuffix("…")) >= len("anthropic/claude")
    assert column(screen, "LATENCY") == ["850 ms", "2.40 s", "30.00 s", "1.80 s", "5.0 ms"]
    assert "- (fallback)" in column(screen, "ROUTE")
    lines = screen.rstrip("\n").splitlines()
    assert len(lines) == 24  # the whole pane: tmux's status bar is off
    footer = lines[-1]
    for key in LIST_KEYS:
        assert key in footer, (key, footer)
    assert "● live │ 5 loaded │ all traces" in lines[-2]


def test_j_moves_the_highlight(terminal, db):
    open_viewer(terminal, db)
    before = terminal.screen(escapes=True)
    first, second = background_of(before, "850 ms"), background_of(before, "2.40 s")
    assert first != second  # the cursor's row stands out

    terminal.keys("j")
    after = terminal.wait_for(
        "the highlight on the second row",
        lambda capture: background_of(capture, "2.40 s") == first,
        escapes=True,
    )
    assert background_of(after, "850 ms") == second  # the first row is back to plain

    # What enter opens now is the second request, not the first.
    terminal.keys("Enter")
    band = terminal.wait_for_text("1 Spans", T_REASON[:12])
    assert T_CODE[:12] not in band
    assert CLAUDE in band


def test_a_filter_keeps_the_matching_rows_and_clearing_it_brings_them_back(terminal, db):
    # Each key waits for what the previous one showed (the bar's line, the footer, the
    # list's focus): a key sent early would land on whatever has the keys at that moment.
    focused = background_of(open_viewer_escaped(terminal, db), "850 ms")
    terminal.keys("/")
    terminal.wait_for("the bar open, empty", lambda s: bar_line(s) == "" and "Cancel" in s)
    terminal.type("status=502")
    terminal.wait_for("the filter typed", lambda s: bar_line(s) == "status=502")
    terminal.keys("Enter")
    screen = terminal.wait_for_text("1 loaded", "filter: status=502")
    assert bar_line(screen) is None
    assert column(screen, "STATUS") == ["502"]
    assert "30.00 s" in screen
    assert "850 ms" not in screen

    # The bar opens on the filter in force; escape closes it without applying what was
    # typed, and gives the keys back to the list.
    terminal.keys("/")
    terminal.wait_for("the bar on the filter", lambda s: bar_line(s) == "status=502")
    terminal.keys("C-u")
    terminal.wait_for("the bar emptied", lambda s: bar_line(s) == "")
    terminal.type("status=200")
    terminal.wait_for("the new filter typed", lambda s: bar_line(s) == "status=200")
    terminal.keys("Escape")
    terminal.wait_for(
        "the bar closed and the list focused",
        lambda capture: (
            bar_line(plain(capture)) is None and background_of(capture, "30.00 s") == focused
        ),
        escapes=True,
    )
    screen = terminal.screen()
    assert "Cancel" not in screen
    assert column(screen, "STATUS") == ["502"]
    assert "filter: status=502" in screen

    # An empty filter is every request again.
    terminal.keys("/")
    terminal.wait_for("the bar on the filter", lambda s: bar_line(s) == "status=502")
    terminal.keys("C-u")
    terminal.wait_for("the bar emptied", lambda s: bar_line(s) == "")
    terminal.keys("Enter")
    screen = terminal.wait_for_text("5 loaded", "all traces")
    assert bar_line(screen) is None
    assert column(screen, "STATUS") == ["200", "200", "502", "200!", "429"]


def test_enter_opens_the_trace_its_tabs_switch_and_escape_returns(terminal, db):
    open_viewer(terminal, db)
    terminal.keys("Enter")
    detail = terminal.wait_for_text("1 Spans", T_CODE[:12])
    for tab in (
        "1 Spans",
        "2 Calls",
        "3 Chain",
        "4 Messages",
        "5 Routing",
        "6 Signals",
        "7 Cost",
        "8 Filters",
    ):
        assert tab in detail
    band = "\n".join(detail.splitlines()[:3])
    assert "200" in band
    assert f"auto → {GPT} (openai)" in band
    assert "plano(routing)" in detail  # the waterfall
    assert "/ Filter" not in detail  # the list's footer is gone

    terminal.keys("4")
    messages = terminal.wait_for_text("Request messages (2)")
    assert "You are terse." in messages
    assert "Write a Rust function that parses a CSV line" in messages
    assert "Response messages (1)" in messages
    assert "→ tool call run_tests" in messages
    assert "plano(routing)" not in messages  # the spans' section is hidden

    terminal.keys("Escape")
    screen = terminal.wait_for_text("5 loaded", "/ Filter")
    assert "1 Spans" not in screen
    assert column(screen, "STATUS") == ["200", "200", "502", "200!", "429"]


def test_q_quits_with_exit_status_0(terminal, db):
    open_viewer(terminal, db)
    assert terminal.exit_status() is None
    terminal.keys("q")
    assert terminal.wait_for_exit() == 0
    # textual gave the terminal back: the alternate screen left, the list gone from view.
    assert "5 loaded" not in terminal.screen()


def test_every_column_shows_at_130x40(terminal, db):
    screen = open_viewer(terminal, db, width=130, height=40)
    assert tuple(header_line(screen).split()) == ALL_COLUMNS
    assert column(screen, "MODEL") == [GPT, CLAUDE, GPT, "2 models", GPT]  # nothing cut
    assert column(screen, "CALLS") == ["1", "1", "1", "3", "1"]
    assert column(screen, "LISTENER") == ["model", "model", "model", "agents", "model"]
    assert column(screen, "TOKENS")[0] == "100→50"
    assert column(screen, "TTFT")[0] == "120 ms"
    assert column(screen, "SIGNALS")[0] == "poor (2)"
    assert len(screen.rstrip("\n").splitlines()) == 40
