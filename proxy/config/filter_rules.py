"""Semantic rules of the filters: what the schema cannot say about them.

Each problem lands on its line: a missing `url` on the filter's id, a builtin option on
the option's key, a bad regex on the pattern. The built-ins' own checks of their options
(`proxy.filters.builtin.option_problems`) run here too, when that module offers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from proxy.config.model import BUILTIN_OPTIONS, Config, Filter, FilterType
from proxy.config.report import Reporter

if TYPE_CHECKING:
    from proxy.config.rules import Facts

# Built-ins that only read requests: as an output filter they would see answer chunks.
INPUT_ONLY_KINDS = frozenset({"prompt_injection"})


def filters(facts: Facts, report: Reporter) -> None:
    config = facts.config
    for item in config.filters:
        _transport_keys(item, facts.raw(item.source), report)
        if item.type is FilterType.BUILTIN:
            _builtin_options(item, facts, report)
        if item.timeout_s is not None and item.timeout_s <= 0:
            report.error(
                "invalid-timeout",
                f"filter '{item.id}' has timeout 0: every call would fail",
                (*item.source, "timeout"),
                "give it a time such as 500ms or 2s.",
            )
    _output_kinds(config, report)


def _transport_keys(item: Filter, raw: Mapping, report: Reporter) -> None:
    if item.type is FilterType.BUILTIN:
        for key in ("url", "tool", "transport"):
            if key in raw:
                report.error(
                    "builtin-filter-key",
                    f"filter '{item.id}' is a builtin: it takes no '{key}'",
                    (*item.source, key),
                    "remove it, or make the filter type http or mcp.",
                    at_key=True,
                )
        if not item.kind:
            report.error(
                "missing-filter-kind",
                f"builtin filter '{item.id}' needs a kind",
                (*item.source, "id"),
                "add kind: pii, prompt_injection or content_policy.",
            )
        return
    if not item.url:
        report.error(
            "missing-filter-url",
            f"{item.type.value} filter '{item.id}' needs a url",
            (*item.source, "id"),
            "add url: http://host:port (an mcp filter's is its MCP endpoint, .../mcp).",
        )
    if item.type is FilterType.HTTP and "tool" in raw:
        report.error(
            "http-filter-key",
            f"filter '{item.id}' is an http filter: 'tool' is for mcp filters",
            (*item.source, "tool"),
            at_key=True,
        )
    for key in sorted(set(raw) & _ALL_OPTIONS):
        report.error(
            "builtin-option",
            f"'{key}' is an option of built-in filters; filter '{item.id}' is {item.type.value}",
            (*item.source, key),
            "remove it, or make the filter type: builtin.",
            at_key=True,
        )


def _builtin_options(item: Filter, facts: Facts, report: Reporter) -> None:
    allowed = BUILTIN_OPTIONS.get(item.kind)
    if allowed is None:
        return  # an unknown kind: the schema reports it
    for key in sorted((set(facts.raw(item.source)) & _ALL_OPTIONS) - allowed):
        owner = next(kind for kind, keys in BUILTIN_OPTIONS.items() if key in keys)
        report.error(
            "builtin-option",
            f"'{key}' is an option of {owner} filters; filter '{item.id}' is {item.kind}",
            (*item.source, key),
            f"{item.kind} takes: {', '.join(sorted(allowed)) or 'no options'}.",
            at_key=True,
        )
    if facts.schema_said(item.source):
        return  # a value of the wrong type or range: said once is enough
    # The built-in's own checks (its regex engine, its limits), on its own options; imported
    # here, not at module level, so a config without filters never loads the built-ins.
    from proxy.filters.builtin import option_problems

    options = {key: value for key, value in item.options.items() if key in allowed}
    for problem in option_problems(item.kind, options):
        report.error("builtin-option", f"filter '{item.id}': {problem}", _where(item, problem))


_OPTION_NAMED = re.compile(r"option '([a-z_]+)(?:\[(\d+)\])?'")


def _where(item: Filter, problem: str) -> tuple:
    """The option a built-in's message names ("option 'rules[1]': ..."), or its kind."""
    match = _OPTION_NAMED.search(problem)
    if match is None or match.group(1) not in item.options:
        return (*item.source, "kind")
    index = match.group(2)
    return (*item.source, match.group(1), *((int(index),) if index is not None else ()))


def _output_kinds(config: Config, report: Reporter) -> None:
    by_id = {item.id: item for item in config.filters}
    for lst in config.listeners:
        for i, fid in enumerate(lst.output_filters):
            item = by_id.get(fid)
            if item is not None and item.kind in INPUT_ONLY_KINDS:
                report.error(
                    "input-only-filter",
                    f"filter '{fid}' ({item.kind}) checks requests; it cannot filter answers",
                    (*lst.source, "output_filters", i),
                    "list it under input_filters.",
                )


_ALL_OPTIONS = frozenset().union(*BUILTIN_OPTIONS.values())
