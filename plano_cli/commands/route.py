"""`plano route`: ask the router what it would do, evaluate it, or lint the routes.

A dry run: no provider model is called and no key is needed. The router is the one
`plano up` would use for the config (a router LLM, if configured, is asked), except that
nothing is pulled.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from plano_cli.commands.validate import CONFIG_NAMES, default_config


class Backend(StrEnum):
    AUTO = "auto"
    EMBEDDED = "embedded"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai-compatible"
    HYBRID = "hybrid"


def route(
    prompt: Annotated[
        str | None,
        typer.Argument(help="The prompt to route.", show_default=False),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-f",
            help="The config file. Default: one in this directory.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", metavar="", help="Say why: scores, margin, prompt.")
    ] = False,
    eval_file: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help='Labeled JSONL, lines of {"text", "route"} ("other" = '
            "no route): report accuracy, confusion and latency.",
            show_default=False,
        ),
    ] = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option(
            "--min-accuracy",
            help="With --eval: exit 1 below this domain accuracy (0.85 or 85).",
            show_default=False,
        ),
    ] = None,
    lint: Annotated[
        bool,
        typer.Option("--lint", metavar="", help="Flag overlapping, vague or terse routes."),
    ] = False,
    learn: Annotated[
        bool,
        typer.Option(
            "--learn",
            metavar="",
            help="Learn examples per route from the prompts in the trace store and write "
            "them to a learned-routes file; with --eval, report before and after.",
        ),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="With --learn: the trace store. Default: the config's, or $PLANO_HOME/traces.db.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="With --learn: only prompts this recent (30m, 12h, 7d).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="With --learn: the newest this many prompts [default: 5000]."
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="With --learn: the file to write. Default: routing.router.learned_routes, "
            "else learned_routes.json beside the config.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend", help="Use this router instead of the config's.", show_default=False
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", help="Embedded router: the score a route needs.", show_default=False
        ),
    ] = None,
    listener: Annotated[
        str | None,
        typer.Option(
            "--listener",
            "-l",
            help="An agent listener: which agents would run, in what order.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Dry-run routing decisions: one prompt, a labeled eval set (--eval), a lint (--lint),
    or learning from traffic (--learn).

    With --listener naming an agent listener: which agents would run, and in what order."""
    modes = sum([prompt is not None, eval_file is not None and not learn, lint, learn])
    if modes != 1:
        _usage("give exactly one of: a PROMPT, --eval FILE, --lint, or --learn")
    if min_accuracy is not None and (eval_file is None or learn):
        _usage("--min-accuracy goes with --eval")
    if not learn and (store or since or out_file or limit is not None):
        _usage("--store, --since, --limit and --out go with --learn")
    # What a mode would not use is refused, not ignored: --learn always learns with the
    # embedded router, and --lint reads the routes alone.
    unused = {"--backend": backend, "--explain": explain or None, "--listener": listener}
    if lint:
        unused["--threshold"] = threshold
    for flag, value in unused.items():
        if (learn or lint) and value is not None:
            _usage(f"{flag} does not go with {'--learn' if learn else '--lint'}")
    since_s = None
    if since is not None:
        from proxy.config.durations import parse_duration

        since_s = parse_duration(since)
        if since_s is None or since_s <= 0:
            _usage(f"--since {since!r} is not a duration such as 30m, 12h or 7d")
    path = config_file or default_config()
    if path is None:
        _usage(f"no config file given (-f), and none of {', '.join(CONFIG_NAMES)} is here")

    from plano_cli import route_run
    from proxy.routing.learn import DEFAULT_LIMIT

    raise typer.Exit(
        route_run.run(
            path,
            prompt=prompt,
            eval_file=eval_file,
            lint=lint,
            learn=(store, out_file, since_s, limit or DEFAULT_LIMIT) if learn else None,
            as_json=as_json,
            explain=explain,
            min_accuracy=min_accuracy,
            backend=backend.value if backend else None,
            threshold=threshold,
            listener=listener,
        )
    )


def _usage(message: str) -> None:
    typer.echo(
        f'error: {message}\n  usage: plano route "PROMPT" -f CONFIG'
        " | --eval FILE | --lint | --learn [--eval FILE]",
        err=True,
    )
    raise typer.Exit(2)
