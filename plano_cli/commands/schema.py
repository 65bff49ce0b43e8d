"""`plano schema`: print the config JSON Schema, or the config reference in Markdown."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class SchemaFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"


def schema(
    output_format: Annotated[
        SchemaFormat,
        typer.Option(
            "--format",
            "-f",
            help="json (for editors such as yaml-language-server) or markdown (the reference).",
        ),
    ] = SchemaFormat.JSON,
) -> None:
    """Print the JSON Schema of Plano configs.

    For editor completion, save it and point yaml-language-server at it:
    `# yaml-language-server: $schema=./plano.schema.json` as a config's first line.
    """
    if output_format is SchemaFormat.MARKDOWN:
        from proxy.config.reference import render_reference

        typer.echo(render_reference(), nl=False)
        return
    from proxy.config.schema_check import schema_path

    typer.echo(schema_path().read_text(encoding="utf-8"), nl=False)
