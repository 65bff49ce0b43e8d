"""`plano keys`: client keys for `listeners[].auth` (docs/auth.md).

`hash` reads a key on standard input (never an argument: it would land in the shell's
history and in `ps`) and prints what the config may hold; `new` makes a random key.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="keys",
    help="Client keys for listeners[].auth: hash one for the config, or make a new one.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("hash")
def hash_key() -> None:
    """Read a key on standard input; print `sha256:<hex>` for the config's `key:`."""
    from proxy.auth.keys import hashed_form

    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("key (not echoed): ")
    else:
        key = sys.stdin.readline()
    key = key.rstrip("\r\n")
    if not key:
        typer.echo("no key on standard input", err=True)
        raise typer.Exit(2)
    typer.echo(hashed_form(key))


@app.command("new")
def new() -> None:
    """Make a random key; print it, then its hash on a second line."""
    from proxy.auth.keys import hashed_form, new_key

    key = new_key()
    typer.echo(key)
    typer.echo(hashed_form(key))
