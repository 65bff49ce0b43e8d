"""The trace list's columns: what each shows of a trace (its calls added up), and which
fit the terminal.

The texts are the ones `plano traces list` prints (traces_cli.fmt and render_list), and
the widths come from the same fitting (traces_cli.columns.fit): optional columns go first,
then the model and route names narrow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, set_cell_size

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.columns import fit
from plano_cli.traces_cli.render_filters import BLOCKED, blocks_cell
from plano_cli.traces_cli.render_list import (
    model_of,
    outcome_style,
    route_of,
    signals_of,
    status_style,
    status_text,
)
from proxy.telemetry.store import TraceRow

Tone = Literal["ok", "warn", "error", "dim", ""]

# The spec's order. SIG is SIGNALS' compact form, a flag, for terminals too narrow for both.
COLUMNS = (
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
)
SIGNALS, SIG = "SIGNALS", "SIG"
# How each trace ended, spelled out: only where every other column fits (STATUS marks a
# failure its status hides, `200!`, at any width).
OUTCOME = "OUTCOME"
RIGHT = frozenset({"CALLS", "STATUS", "LATENCY", "TTFT", "TOKENS", "COST"})
# Dropped first to last on narrow terminals (CALLS last: it says what a row's sums add up);
# the signal flag stays (compact) instead.
OPTIONAL = ("LISTENER", "TTFT", "TOKENS", "CALLS")
FLEXIBLE = ("ROUTE", "MODEL")
FLEX_MIN = 14
SIG_MARK = "●"
GAP = 2  # between two columns; one more blank at either edge

_TONE_OF_STYLE: dict[str, Tone] = {
    "green": "ok",
    "yellow": "warn",
    "red": "error",
    "dim": "dim",
    "": "",
}
_QUALITY_TONE: dict[str, Tone] = {
    "excellent": "ok",
    "good": "ok",
    "neutral": "",
    "poor": "warn",
    "severe": "error",
}


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    tone: Tone = ""


def row_cells(row: TraceRow, now: float) -> dict[str, Cell]:
    """Every column's cell, SIGNALS and SIG both: the layout picks."""
    quality = _QUALITY_TONE.get(row.signal_quality or "", "")
    return {
        "TIME": Cell(fmt.local_time(row.started_at, now)),
        "LISTENER": Cell(row.listener or fmt.NONE),
        "ROUTE": Cell(route_of(row)),
        "MODEL": Cell(model_of(row)),
        "CALLS": Cell(str(row.calls)),
        # The CLI's colors for a status: 2xx green, 4xx yellow, 5xx red, and red for a
        # failure the status hides (`200!`).
        "STATUS": Cell(
            status_text(row.status, row.outcome),
            _TONE_OF_STYLE.get(status_style(row.status, row.outcome), ""),
        ),
        OUTCOME: Cell(row.outcome or fmt.NONE, _TONE_OF_STYLE[outcome_style(row.outcome)]),
        "LATENCY": Cell(fmt.duration_ms(row.latency_ms)),
        "TTFT": Cell(fmt.duration_ms(row.ttft_ms)),
        "TOKENS": Cell(fmt.tokens(row.input_tokens, row.output_tokens)),
        "COST": Cell(fmt.cost(row.cost_usd)),
        SIGNALS: Cell(signals_of(row), quality if row.signal_quality else "dim"),
        SIG: Cell(_flag(row), quality),
        # Which filter blocked a call (or would have, in observe mode): a column of its
        # own once any row has one (plan).
        BLOCKED: Cell(blocks_cell(row), "error" if row.blocked_by else "warn"),
    }


def _flag(row: TraceRow) -> str:
    if row.signal_quality is None:
        return ""
    count = row.signal_count or 0
    return f"{SIG_MARK}{count}" if count else SIG_MARK


def widths(cells: dict[str, Cell]) -> dict[str, int]:
    return {name: cell_len(cell.text) for name, cell in cells.items()}


@dataclass(frozen=True, slots=True)
class Layout:
    """The columns shown, in order, with their widths."""

    columns: tuple[tuple[str, int], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def line(self, texts: Mapping[str, str]) -> list[tuple[str, str]]:
        """(column, text padded or cut to its width) for each column shown."""
        return [(name, pad(texts.get(name, ""), width, name in RIGHT)) for name, width in self]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.columns)


def plan(width: int, measured: Mapping[str, int]) -> Layout:
    """The layout for `width` cells, given the widest cell of each column so far.

    The full SIGNALS column is shown only when every other column fits too, and OUTCOME
    only when all of that fits without cutting a name.
    """
    columns = _columns(measured)
    widest = _fitted((*columns, OUTCOME, SIGNALS), width, measured)
    names_whole = all(dict(widest).get(n, 0) >= measured.get(n, 0) for n in FLEXIBLE)
    if OUTCOME in widest.names and names_whole:
        return widest
    full = _fitted((*columns, SIGNALS), width, measured)
    if all(name in full.names for name in OPTIONAL):
        return full
    return _fitted((*columns, SIG), width, measured)


def _columns(measured: Mapping[str, int]) -> tuple[str, ...]:
    """COLUMNS, with BLOCKED BY after STATUS once a row has had a filter block."""
    if not measured.get(BLOCKED):
        return COLUMNS
    at = COLUMNS.index("STATUS") + 1
    return (*COLUMNS[:at], BLOCKED, *COLUMNS[at:])


def _fitted(names: tuple[str, ...], width: int, measured: Mapping[str, int]) -> Layout:
    wanted = {name: max(cell_len(name), measured.get(name, 0)) for name in names}
    # fit() counts one cell less than a line takes: it has no blank at either edge.
    optional = (OUTCOME, *OPTIONAL)
    flexible = tuple(name for name in (*FLEXIBLE, BLOCKED) if name in wanted)
    fitted = fit(wanted, width - 1, optional=optional, flexible=flexible, flex_min=FLEX_MIN)
    return Layout(tuple((name, fitted[name]) for name in names if name in fitted))


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, or padded."""
    if cell_len(text) > width:
        text = set_cell_size(text, max(width - 1, 0)) + "…" if width > 0 else ""
    room = width - cell_len(text)
    return " " * room + text if right else text + " " * room
