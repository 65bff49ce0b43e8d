"""`plano up`: validate the config, then serve it in the foreground until Ctrl-C.

With --detach it serves in the background instead (see plano_cli.daemon); `plano down` stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plano_cli.commands.validate import CONFIG_NAMES, default_config


def up(
    config_file: Annotated[
        Path | None,
        typer.Argument(
            help="The config file. Default: plano_config.yaml or config.yaml here.",
            show_default=False,
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            "--shutdown-timeout",
            help="Seconds to let in-flight requests finish on shutdown; those still running "
            "then end with an error in their client's format.",
        ),
    ] = 30.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Gateway processes sharing each listener port (SO_REUSEPORT), supervised "
            "and restarted by this one; about one per CPU core. Traces and /metrics stay one.",
        ),
    ] = 1,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="No per-request access log.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            "-d",
            metavar="",
            help="Run in the background, logging to the run directory; stop with `plano down`.",
        ),
    ] = False,
    # The background process that --detach spawns; its command line marks it as ours.
    detached_child: Annotated[bool, typer.Option("--detached-child", hidden=True)] = False,
) -> None:
    """Start the proxy: every listener in the config, with one access-log line per request."""
    from plano_cli.problem_output import print_result
    from proxy.config import Mode, check_file

    path = config_file or default_config()
    if path is None:
        typer.echo(
            f"error: no config file given, and none of {', '.join(CONFIG_NAMES)} "
            "is in this directory.",
            err=True,
        )
        raise typer.Exit(2)
    try:
        result = check_file(path, mode=Mode.SERVE)
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {path}: {getattr(exc, 'strerror', None) or exc}", err=True)
        raise typer.Exit(2) from None
    if not result.ok or result.config is None:
        print_result(result, err=True)
        typer.echo("plano up: fix the errors above, then run it again.", err=True)
        raise typer.Exit(1)
    if result.warnings:
        print_result(result, err=True)
    if detach and not detached_child:
        from plano_cli.daemon import start_detached

        raise typer.Exit(
            start_detached(
                path,
                result.config,
                shutdown_timeout=shutdown_timeout,
                quiet=quiet,
                workers=workers,
            )
        )
    from plano_cli.serve import run_foreground  # aiohttp and rich: only where it serves

    try:
        code = run_foreground(
            result.config,
            shutdown_timeout=shutdown_timeout,
            access_log=not quiet,
            detached=detached_child,
            workers=workers,
        )
    finally:
        if detached_child:
            from plano_cli.daemon import release_own_files

            release_own_files()
    raise typer.Exit(code)
