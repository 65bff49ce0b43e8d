"""`plano traces`: read the traces the gateway stored, for people and for scripts.

A trace holds every call (request through the gateway) made under one trace id: one for a
plain request, many for an agent's run.

    plano traces         at a terminal: the interactive viewer; piped: as `list`
    plano traces list    the newest traces, one line each, their calls added up
    plano traces show    one trace: its calls, spans, routing, signals, cost, messages
    plano traces stats   calls: counts, latency and TTFT percentiles, tokens, cost, errors
    plano traces tail    calls as they finish

Only typer is imported here: rich, sqlite-utils and the store load when a command runs
(plano_cli.traces_cli), and textual when the viewer opens (plano_cli.traces_tui), so
`plano validate` does not pay for them.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from plano_cli.traces_cli.keys import TAIL_KEYS, WHERE_KEYS

LIST_LIMIT = 50

app = typer.Typer(
    name="traces",
    help="Read the local trace store: list, show, stats, tail. Alone: the interactive viewer.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,  # as the root app: rich help costs start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Grouping(StrEnum):
    MODEL = "model"
    ROUTE = "route"


class Theme(StrEnum):
    DARK = "dark"
    LIGHT = "light"


Db = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Read this trace store instead of $PLANO_HOME/traces.db.",
        show_default=False,
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Traces started in the last 45s, 30m, 2h, 1d (or 1h30m), or since an ISO time.",
        show_default=False,
    ),
]


def _where(keys: tuple[str, ...]) -> typer.models.OptionInfo:
    return typer.Option(
        "--where",
        "-w",
        metavar="KEY=VALUE",
        help=f"Keep what matches KEY=VALUE; repeat to AND. Keys: {', '.join(keys)}.",
        show_default=False,
    )


Where = Annotated[list[str] | None, _where(WHERE_KEYS)]
TailWhere = Annotated[list[str] | None, _where(TAIL_KEYS)]
Json = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")]


@app.callback()
def traces(
    ctx: typer.Context,
    db: Db = None,
    since: Since = None,
    where: Where = None,
    theme: Annotated[
        Theme, typer.Option("--theme", help="The viewer's colors.", case_sensitive=False)
    ] = Theme.DARK,
) -> None:
    """Read the local trace store: list, show, stats, tail. Alone: the interactive viewer.

    Alone, at a terminal, `plano traces` opens the interactive viewer (j/k move, enter
    opens a trace, / filters, q quits); piped or in CI it prints `plano traces list`.
    """
    if ctx.invoked_subcommand is not None:
        if db is not None or since is not None or where or theme is not Theme.DARK:
            # Taken here, they would silently not reach the subcommand.
            raise typer.BadParameter(
                f"put them after the subcommand: plano traces {ctx.invoked_subcommand} --db …",
                param_hint="--db/--since/--where/--theme",
            )
        return
    default_view(db, since, where, theme)


def interactive() -> bool:
    """Whether a person is at a terminal: the viewer needs both ends of it."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def default_view(db: Path | None, since: str | None, where: list[str] | None, theme: Theme) -> None:
    """What a bare `plano traces` does: the viewer at a terminal; elsewhere (a pipe, CI)
    the list, so that scripts keep working."""
    if interactive():
        from plano_cli.traces_tui.run import run_viewer

        raise typer.Exit(run_viewer(db, since, where, theme.value))
    list_requests(db=db, since=since, where=where, limit=LIST_LIMIT, as_json=False)


@app.command("list")
def list_requests(
    db: Db = None,
    since: Since = None,
    where: Where = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many traces, newest first.")
    ] = LIST_LIMIT,
    as_json: Json = False,
) -> None:
    """The newest traces, one line each: a trace's calls added up (CALLS says how many).

    Exit code 0 (also when there is nothing yet), 1 when --db does not exist, 2 on bad usage.
    """
    from plano_cli.traces_cli.run import run_list

    raise typer.Exit(run_list(db, since, where, limit, as_json))


@app.command("show")
def show(
    trace_id: Annotated[
        str, typer.Argument(metavar="TRACE_ID", help="A trace id, or a unique prefix of one.")
    ],
    db: Db = None,
    as_json: Json = False,
    full: Annotated[
        bool, typer.Option("--full", metavar="", help="Print long messages whole.")
    ] = False,
) -> None:
    """One trace: summary, every call, span waterfall, routing, signals, cost, messages.

    Exit code 0, or 1 when no trace (or several) match the id.
    """
    from plano_cli.traces_cli.run import run_show

    raise typer.Exit(run_show(db, trace_id, as_json, full))


@app.command("stats")
def stats(
    db: Db = None,
    since: Since = None,
    where: Where = None,
    by: Annotated[
        Grouping | None,
        typer.Option(
            "--by", help="One table, by model or by route. Default: both.", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            help="At most this many rows per table, busiest first.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Calls, error rate, p50/p95 latency and TTFT, tokens and cost, per model and route.

    Exit code 0 (also when there is nothing yet), 1 when --db does not exist, 2 on bad usage.
    """
    from plano_cli.traces_cli.run import run_stats

    raise typer.Exit(run_stats(db, since, where, by.value if by else None, limit, as_json))


@app.command("tail")
def tail(
    db: Db = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Print the calls since then first (30m, 2h, an ISO time…). "
            "Default: only new ones.",
            show_default=False,
        ),
    ] = None,
    where: TailWhere = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help="Stop after this many.", show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print one JSON object per line.")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            min=1,
            help="Seconds each poll looks back for calls that started earlier but "
            "finished late (default 120); raise it for very long calls.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print calls as they finish, one line each; Ctrl-C stops (exit code 0)."""
    from plano_cli.traces_cli.run import run_tail

    raise typer.Exit(run_tail(db, since, where, limit, as_json, window))
