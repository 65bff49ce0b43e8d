"""The chain section: an agent listener's orchestrator decision, then each agent in the
order it ran with its outcome, latency and the answer it handed on; as `plano traces show`
draws it, from the same model, with handoffs whole."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.render_show import Glyphs, chain_table, per_call
from plano_cli.traces_cli.trace_model import agent_chains, trace_calls
from proxy.telemetry.store import TraceDetail

NO_AGENTS = "no agents: this trace has no call of an agent listener"


def chain_view(detail: TraceDetail) -> RenderableType:
    calls = trace_calls(detail)
    chains = agent_chains(detail, calls)
    if not chains:
        return Text(NO_AGENTS, style="dim")
    glyphs = Glyphs(unicode=True)
    return Group(*per_call(chains, calls, lambda c: chain_table(c, glyphs, None), "bold reverse"))
