"""`plano logs`: the log of the background proxy, and following it."""

from __future__ import annotations

import os
from typing import Annotated

import typer

POLL_S = 0.2


def logs(
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", metavar="", help="Keep printing new lines; Ctrl-C stops."),
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to print.")
    ] = 50,
) -> None:
    """Print the end of the background proxy's log (plano up --detach writes it).

    Exit code 0, or 1 when there is no log yet.
    """
    import sys

    from plano_cli import daemon

    path = daemon.run_files().log
    try:
        tail, offset = daemon.tail_lines(path, lines)
    except FileNotFoundError:
        typer.echo(
            typer.style("error:", fg="red", bold=True)
            + f" no log yet: {path} does not exist. Start plano with `plano up --detach`.",
            err=True,
        )
        raise typer.Exit(1) from None
    try:
        for line in tail:
            typer.echo(line)
        if follow:
            _follow(path, offset)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `plano logs -f | head`: the reader is gone, and that is fine
        # Python would report the failed flush of stdout at exit otherwise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise typer.Exit(0)


def _follow(path, offset: int) -> None:
    """Poll the file: portable, and simple to get right across truncation and rotation."""
    import codecs
    import time

    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    f = path.open("rb")
    f.seek(offset)
    try:
        while True:
            chunk = f.read(65536)
            if chunk:
                typer.echo(decoder.decode(chunk), nl=False)
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:  # rotated away, the new file not created yet
                time.sleep(POLL_S)
                continue
            if current.st_ino != os.fstat(f.fileno()).st_ino:
                # Rotated: finish the old file (a writer may still hold it), then the new one.
                if rest := f.read():
                    typer.echo(decoder.decode(rest), nl=False)
                try:
                    new = path.open("rb")
                except FileNotFoundError:
                    time.sleep(POLL_S)
                    continue
                f.close()
                f = new
                decoder.reset()
                continue
            if current.st_size < f.tell():  # truncated in place (copytruncate)
                f.seek(0)
                decoder.reset()
                continue
            time.sleep(POLL_S)
    finally:
        f.close()
