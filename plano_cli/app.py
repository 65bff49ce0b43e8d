"""`plano`: the command-line front end. Commands live one per module in plano_cli.commands.

Start-up time matters (CI runs `plano validate` on every push), so this module imports
only typer; each command imports what it needs when it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from plano_cli.commands import (
    down,
    filters,
    keys,
    logs,
    route,
    schema,
    status,
    traces,
    up,
    validate,
)

app = typer.Typer(
    name="plano",
    help="Plano: an AI-native proxy for LLM and agent traffic, configured by one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Rich-rendered help imports markdown and table machinery: ~150 ms on every `--help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from proxy import __version__

        typer.echo(f"plano {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            metavar="",
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Plano: an AI-native proxy for LLM and agent traffic, configured by one YAML file."""


app.command("validate")(validate.validate)
app.command("schema")(schema.schema)
app.command("up")(up.up)
app.command("down")(down.down)
app.command("status")(status.status)
app.command("logs")(logs.logs)
app.command("route")(route.route)
app.add_typer(traces.app, name="traces")
app.add_typer(filters.app, name="filters")
app.add_typer(keys.app, name="keys")


def main() -> None:
    app()
