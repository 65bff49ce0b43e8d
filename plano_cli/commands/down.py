"""`plano down`: stop the proxy that `plano up --detach` started."""

from __future__ import annotations

from typing import Annotated

import typer


def down(
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            "-t",
            min=0,
            help="Seconds to wait before killing it. Default: the --shutdown-timeout it was "
            "started with, plus 10 s for it to end what is still running and write its traces.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Stop the background proxy gracefully: in-flight requests finish, up to its own
    --shutdown-timeout, and those still running then end with an error; killed after --timeout.

    Exit code 0 when it stopped or was not running, 1 when it could not be signalled.
    """
    import time

    from plano_cli import daemon

    files = daemon.run_files()
    pid, stale = daemon.running_pid(files)
    if pid is None:
        if stale is not None:
            typer.echo(f"removed a stale pidfile (pid {stale} was not running)", err=True)
        typer.echo("plano is not running")
        raise typer.Exit(0)

    if timeout is None:
        timeout = daemon.stop_timeout(daemon.read_meta(files))
    typer.echo(f"stopping plano (pid {pid})...")
    started = time.monotonic()
    try:
        graceful = daemon.stop(pid, timeout)
    except PermissionError:
        typer.echo(
            typer.style("error:", fg="red", bold=True) + f" not allowed to signal pid {pid}",
            err=True,
        )
        raise typer.Exit(1) from None
    daemon.remove_files_of(files, pid)
    if graceful:
        typer.echo(f"plano stopped ({time.monotonic() - started:.1f}s)")
    else:
        typer.echo(
            typer.style("warning:", fg="yellow", bold=True)
            + f" plano did not stop within {timeout:g}s; killed it"
            " (in-flight requests were cut off)",
            err=True,
        )
        typer.echo("plano stopped")
    raise typer.Exit(0)
