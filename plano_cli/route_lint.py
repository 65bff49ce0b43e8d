"""`plano route --lint`: print the findings on a config's routes."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from plano_cli.json_output import print_json_line
from proxy.config.model import Config
from proxy.routing.lint import lint_routes
from proxy.routing.routes import routes_from_config


def run_lint(config: Config, path: Path, out: Console, as_json: bool) -> int:
    from proxy.routing.embedded.encoder import Encoder
    from proxy.routing.embedded.router import cached_embedding
    from proxy.routing.embedded.weights import RouterModelUnavailable, find_model

    routes = routes_from_config(config)
    try:
        encoder = Encoder.load(find_model(config.routing.router.model_path))
    except RouterModelUnavailable as exc:
        out.print(f"[red]error:[/red] {exc}")
        return 2
    findings = lint_routes(routes, cached_embedding(encoder))
    if as_json:
        print_json_line(
            {
                "config": str(path),
                "routes": len(routes),
                "findings": [f.as_json() for f in findings],
            }
        )
    elif not routes:
        out.print(f"{path}: no routing_preferences to lint")
    elif not findings:
        out.print(f"[green]✓[/green] {path}: {len(routes)} routes, no findings")
    else:
        out.print(f"[yellow]![/yellow] {path}: {len(routes)} routes, {len(findings)} finding(s)")
        for finding in findings:
            out.print(f"  [bold]{finding.code}[/bold] {finding.message}")
            out.print(f"    [dim]hint: {finding.hint}[/dim]")
            if finding.examples:
                out.print("    examples:", markup=False)
                for example in finding.examples:
                    out.print(f"      - {json.dumps(example)}", markup=False)
    return 1 if findings else 0
