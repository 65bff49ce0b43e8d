"""`plano filters serve`: the built-in guardrails as http filters for other gateways.

Only typer here; the filters and aiohttp load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="filters",
    help="Built-in guardrails (pii, prompt_injection, content_policy) as http filters.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("serve")
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-f", help="Serve the config's `type: builtin` filters."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Serve one built-in: pii, prompt_injection, content_policy."),
    ] = None,
    filter_id: Annotated[
        str | None, typer.Option("--id", help="Its id (the mount); default: the kind.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="key=value for the one built-in; the value is YAML (-o threshold=0.7).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 10500,
) -> None:
    """Serve built-ins at http://HOST:PORT/<filter id>, upstream Plano's http filter protocol."""
    import yaml

    from proxy.filters.serve import ServeError, build_filters, make_app

    if (config is None) == (kind is None):
        raise typer.BadParameter("give either --config or --kind")
    if config is not None:
        try:
            data = yaml.safe_load(config.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise typer.BadParameter(f"cannot read {config}: {exc}") from exc
        entries = data.get("filters") or [] if isinstance(data, dict) else []
    else:
        entry = {"id": filter_id or kind, "type": "builtin", "kind": kind}
        for item in option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"--option {item!r}: expected key=value")
            entry[key.strip()] = yaml.safe_load(value)
        entries = [entry]
    try:
        filters = build_filters(entries)
    except ServeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    import logging
    import sys

    from aiohttp import web

    # Failures and observe mode's would-be decisions are reported here: on stderr.
    report = logging.getLogger("plano.filters")
    report.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    report.addHandler(handler)
    for fid, served in filters.items():
        served.builtin.warm()  # the injection encoder loads now, not on the first request
        typer.echo(f"{served.spec.kind} filter {fid!r}: url http://{host}:{port}/{fid}")
    web.run_app(make_app(filters), host=host, port=port, print=None)
