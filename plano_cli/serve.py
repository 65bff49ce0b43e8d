"""Running the proxy in this process: the start-up panel, access log lines, Ctrl-C."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from plano_cli.pull_progress import PullBar
from proxy.config.model import Config
from proxy.embedded.local_model import LocalModelError
from proxy.server.event_loop import run as run_event_loop
from proxy.server.runner import ProxyServer
from proxy.server.supervisor import WorkerPool
from proxy.state.conversations import StateStoreError
from proxy.telemetry.batch_log import configure_logging
from proxy.telemetry.settings import worker_settings
from proxy.upstream.targets import TargetError


def run_foreground(
    config: Config,
    *,
    shutdown_timeout: float,
    access_log: bool,
    detached: bool = False,
    workers: int = 1,
) -> int:
    """Serve until a signal. `detached`: the background process of `plano up -d`, whose
    output is plano.log; stopped with `plano down`. `workers` > 1: this process supervises
    that many gateway processes (proxy.server.supervisor)."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        # A log file or a pipe: no 80-column wrapping of messages (rich's default there).
        console.soft_wrap = True
    log_writer = configure_logging(sys.stderr, access_log)
    pull_bar = PullBar(console, config.routing.router.model or "router model")
    if workers > 1:
        server = WorkerPool(
            config,
            workers,
            shutdown_timeout=shutdown_timeout,
            telemetry=worker_settings(config),
            access_log=access_log,
        )
    else:
        server = ProxyServer(
            config,
            shutdown_timeout=shutdown_timeout,
            router_progress=pull_bar,
            telemetry=worker_settings(config),
        )

    async def main() -> None:
        try:
            try:
                await server.start()
            finally:
                pull_bar.close()  # the bar must not outlive the pull, success or not
        except (LocalModelError, TargetError, StateStoreError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise SystemExit(1) from None
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot listen: {exc.strerror or exc}")
            raise SystemExit(1) from None
        rows = summary_rows(config, server)
        if console.is_terminal:
            console.print(_panel(rows))
        else:
            # A log is read later, in another width: plain lines, and how to stop this one.
            stop = "`plano down` stops it" if detached else "Ctrl-C or SIGTERM stops it"
            console.print(_plain(rows, stop), markup=False)
        await server.serve_until_signalled()

    try:
        run_event_loop(main())
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        log_writer.close()  # writes what is still pending
    console.print("[dim]plano stopped[/dim]")
    return 0


def summary_rows(config: Config, server: ProxyServer | WorkerPool) -> list[tuple[str, str]]:
    """What is being served, as (name, value) rows in rich markup."""
    rows: list[tuple[str, str]] = []
    if isinstance(server, WorkerPool):
        pids = ", ".join(str(pid) for pid in server.pids)
        rows.append(("workers", f"{server.workers} [dim](pids {pids}; SO_REUSEPORT)[/dim]"))
    for bound in server.bound:
        rows.append(
            (
                f"{bound.listener.type.value} listener",
                f"{bound.url}  [dim]({bound.listener.name})[/dim]",
            )
        )
    for name, orchestrator in server.orchestrators.items():
        rows += orchestrator_rows(name, orchestrator)
    for listener in server.skipped:
        rows.append(
            (
                f"{listener.type.value} listener",
                "[yellow]not served yet[/yellow] "
                f"[dim]({listener.name}, port {listener.port})[/dim]",
            )
        )
    default = config.default_provider
    for provider in config.providers:
        mark = " [green](default)[/green]" if provider is default else ""
        rows.append(("model", f"{escape(provider.model)}{mark}"))
    for alias, target in config.aliases.items():
        fallbacks = config.alias_fallbacks.get(alias, ())
        then = f"  [dim]fallbacks: {escape(', '.join(fallbacks))}[/dim]" if fallbacks else ""
        rows.append(("alias", f"{escape(alias)} → {escape(target)}{then}"))
    rows.append(("routes", escape(", ".join(r.name for r in config.routes)) or "[dim]none[/dim]"))
    if server.router is not None:
        *notes, router = server.router.notes or ["router: -"]
        rows.append(("router", escape(router.removeprefix("router: "))))
        rows.extend(("", f"[yellow]{escape(note)}[/yellow]") for note in notes)
    rows.extend(telemetry_rows(config, server))
    rows.extend(shared_state_rows(server))
    return rows


def _panel(rows: list[tuple[str, str]]) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return Panel(table, title="plano up", subtitle="Ctrl-C to stop", expand=False)


def _plain(rows: list[tuple[str, str]], stop: str) -> str:
    width = max(len(name) for name, _ in rows)
    lines = ["plano up: serving"]
    lines += [
        f"  {name:<{width}}  {Text.from_markup(value).plain}".rstrip() for name, value in rows
    ]
    lines.append(f"  {stop}")
    return "\n".join(lines)


def orchestrator_rows(name: str, orchestrator) -> list[tuple[str, str]]:
    """An agent listener's agents and who picks them, with start-up notes."""
    agents = ", ".join(
        f"{agent_id} [green](default)[/green]" if agent_id == orchestrator.default else agent_id
        for agent_id in orchestrator.ids
    )
    rows = [(f"agents [dim]({name})[/dim]", agents)]
    rows.append(("orchestrator", orchestrator.describe()))
    # Its router service's notes end with the "router: ..." line, which describe() covers.
    notes = orchestrator.service.notes[:-1] if orchestrator.service is not None else []
    rows += [("", f"[yellow]{note}[/yellow]") for note in notes]
    return rows


def shared_state_rows(server: ProxyServer | WorkerPool) -> list[tuple[str, str]]:
    """Where shared state lives (its URL masked), and whether it answered at start-up
    (each of --workers N opens its own client: the parent only names it)."""
    from proxy.config.redact import redact_url

    config = server.config
    rows = []
    stores = getattr(server, "shared", None)
    if config.shared_state is not None:
        state = config.shared_state
        mode = state.on_unavailable.value
        where = redact_url(state.url.reveal())
        up = stores is None or stores.state is None or stores.state.up
        note = "" if up else " [yellow](not answering: retried every second)[/yellow]"
        rows.append(("shared state", f"{where} ({mode}, {state.timeout_s * 1000:g} ms){note}"))
    cache = config.routing.session_cache
    if cache.type == "redis" and cache.url is not None:
        same = config.shared_state is not None and cache.url == config.shared_state.url
        where = "shared state" if same else f"{redact_url(cache.url.reveal())} (fail_open)"
        rows.append(("affinity", f"Redis: {where}"))
    return rows


def telemetry_rows(config: Config, server: ProxyServer | WorkerPool) -> list[tuple[str, str]]:
    from proxy.paths import default_trace_store
    from proxy.telemetry.otlp_export import describe_exporter

    tracing = config.tracing
    rows = []
    if server.admin_url is not None:
        rows.append(("metrics", f"{server.admin_url}/metrics"))
        rows.append(("OTLP in", f"{server.admin_url}/v1/traces"))
    store = tracing.store
    if tracing.random_sampling <= 0:
        rows.append(("traces", "[dim]off (tracing.random_sampling: 0)[/dim]"))
    elif store.enabled:
        path = store.path or str(default_trace_store())
        messages = "with messages" if store.capture_messages else "without messages"
        rows.append(
            ("traces", f"{tracing.random_sampling:g}% to {path} ({messages}; `plano traces`)")
        )
    rows.append(("OTLP out", describe_exporter(tracing.otlp_endpoint)))
    return rows
