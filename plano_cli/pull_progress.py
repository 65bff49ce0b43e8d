"""A rich progress bar for `ollama pull`, fed by the router backend's progress callback."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from proxy.routing.backends.ollama_router import PullProgress


class PullBar:
    """One bar per layer; status lines (manifest, verifying, success) as the description."""

    def __init__(self, console: Console, model: str = "router model"):
        self.console = console
        self.model = model
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, update: PullProgress) -> None:
        if self.progress is None:
            self.console.print(f"pulling the router model [bold]{self.model}[/bold] into Ollama")
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
            )
            self.progress.start()
        if update.digest and update.total:
            task = self.tasks.get(update.digest)
            if task is None:
                task = self.tasks[update.digest] = self.progress.add_task(
                    update.digest.removeprefix("sha256:")[:12], total=update.total
                )
            self.progress.update(task, completed=update.completed or 0)
        elif update.status:
            self.progress.console.print(f"[dim]{update.status}[/dim]")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
