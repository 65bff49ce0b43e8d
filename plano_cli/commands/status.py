"""`plano status`: whether the background proxy runs, and whether its listeners answer."""

from __future__ import annotations

from typing import Annotated

import typer

RUNNING, NOT_RUNNING, UNHEALTHY = 0, 1, 3


def status(
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print a JSON object for scripts.")
    ] = False,
) -> None:
    """Show the background proxy: pid, uptime, config, and each listener's /healthz.

    Exit code 0 when it runs and every listener answers, 1 when it is not running,
    3 when it runs but a listener does not answer (or it is still starting).
    """
    import json

    from plano_cli import daemon

    files = daemon.run_files()
    pid, _ = daemon.running_pid(files)
    if pid is None:
        if as_json:
            typer.echo(json.dumps({"running": False}, indent=2))
        else:
            typer.echo("plano is not running")
        raise typer.Exit(NOT_RUNNING)

    meta = daemon.read_meta(files)
    # No metadata yet: `up --detach` writes it once the listeners answer.
    starting = meta is None or meta.get("pid") != pid
    urls = [] if starting else [u for u in meta.get("listeners", []) if isinstance(u, str)]
    health = {url: daemon.answers_healthz(url) for url in urls}
    healthy = not starting and all(health.values())
    uptime = daemon.uptime_seconds(None if starting else meta, files.pid)
    config = None if starting else meta.get("config")

    if as_json:
        report = {
            "running": True,
            "healthy": healthy,
            "starting": starting,
            "pid": pid,
            "uptime_s": None if uptime is None else round(uptime, 1),
            "started_at": None if starting else meta.get("started_at"),
            "config": config,
            "workers": None if starting else meta.get("workers", 1),
            "log": str(files.log),
            "listeners": [{"url": url, "healthy": ok} for url, ok in health.items()],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        state = "starting" if starting else "running" if healthy else "running, unhealthy"
        since = f", up {daemon.format_duration(uptime)}" if uptime is not None else ""
        typer.echo(f"plano is {state} (pid {pid}{since})")
        typer.echo(f"  config: {config or 'unknown'}")
        workers = None if starting else meta.get("workers")
        if isinstance(workers, int) and workers > 1:
            typer.echo(f"  workers: {workers}")
        typer.echo(f"  log:    {files.log}")
        for url, ok in health.items():
            mark = (
                typer.style("healthy", fg="green")
                if ok
                else typer.style("not answering /healthz", fg="red")
            )
            typer.echo(f"  {url}  {mark}")
    raise typer.Exit(RUNNING if healthy else UNHEALTHY)
