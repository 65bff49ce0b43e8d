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
        bool, typer.Option("--lint", metavar="", help="Flag overlapping or vague routes.")
    ] = False,
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
    """Dry-run routing decisions: one prompt, a labeled eval set (--eval), or a lint (--lint).

    With --listener naming an agent listener: which agents would run, and in what order."""
    modes = sum([prompt is not None, eval_file is not None, lint])
    if modes != 1:
        _usage("give exactly one of: a PROMPT, --eval FILE, or --lint")
    if min_accuracy is not None and eval_file is None:
        _usage("--min-accuracy goes with --eval")
    path = config_file or default_config()
    if path is None:
        _usage(f"no config file given (-f), and none of {', '.join(CONFIG_NAMES)} is here")

    from plano_cli import route_run

    raise typer.Exit(
        route_run.run(
            path,
            prompt=prompt,
            eval_file=eval_file,
            lint=lint,
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
        f'error: {message}\n  usage: plano route "PROMPT" -f CONFIG | --eval FILE | --lint',
        err=True,
    )
    raise typer.Exit(2)
