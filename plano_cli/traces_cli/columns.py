"""Tables that fit the terminal: optional columns go first, then the free-text ones narrow.

Rich, given a table wider than the terminal, squeezes every column alike, which cuts
numbers; here numbers keep their width and only names are shortened (with an ellipsis).
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

NAME_MIN = 4


def fitted_table(
    cells: dict[str, list[Text]],
    total: int,
    *,
    optional: tuple[str, ...] = (),
    flexible: tuple[str, ...] = (),
    flex_min: int = 12,
    left: frozenset[str] = frozenset(),
) -> Table:
    """A table of `cells` (column name -> one Text per row) at most `total` wide.

    `optional` columns are dropped in that order while the rest would not fit with the
    `flexible` ones `flex_min` wide; then the widest flexible column is narrowed, one
    character at a time (down to NAME_MIN on a very narrow terminal).
    Columns not in `left` are right-aligned (numbers).
    """
    widths = {name: max([len(name), *(t.cell_len for t in col)]) for name, col in cells.items()}
    widths = fit(widths, total, optional=optional, flexible=flexible, flex_min=flex_min)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    shown = [name for name in cells if name in widths]
    for name in shown:
        justify = "left" if name in left else "right"
        table.add_column(name, justify=justify, width=widths[name], no_wrap=True)
    for i in range(len(next(iter(cells.values()), []))):
        table.add_row(*(cells[name][i] for name in shown))
    return table


def fit(
    widths: dict[str, int],
    total: int,
    *,
    optional: tuple[str, ...] = (),
    flexible: tuple[str, ...] = (),
    flex_min: int = 12,
) -> dict[str, int]:
    """New widths; a dropped column is left out."""
    widths = dict(widths)

    def fixed() -> int:
        # Each cell's right padding, and one separator between two columns.
        spacing = 2 * len(widths) - 1
        return sum(w for n, w in widths.items() if n not in flexible) + spacing

    for name in optional:
        if fixed() + sum(min(widths[n], flex_min) for n in flexible) <= total:
            break
        widths.pop(name, None)
    room = total - fixed()
    while flexible and sum(widths[n] for n in flexible) > room:
        widest = max(flexible, key=lambda n: widths[n])
        if widths[widest] <= NAME_MIN:
            break  # the terminal is too narrow for any table: rich will squeeze it
        widths[widest] -= 1
    return widths
