"""Guardrails that run in-process, with no service to call: pii, prompt_injection and
content_policy. The chain builds them with `build_builtin`; config validation asks
`option_problems` (each message names the option)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.filters.builtin.base import BuiltinFilter

KINDS = ("pii", "prompt_injection", "content_policy")


def option_problems(kind: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a built-in's options (empty: they are fine)."""
    if kind == "pii":
        from proxy.filters.builtin import pii_filter

        return pii_filter.option_problems(options)
    if kind == "prompt_injection":
        from proxy.filters.builtin import injection

        return injection.option_problems(options)
    if kind == "content_policy":
        from proxy.filters.builtin import content_policy

        return content_policy.option_problems(options)
    return [f"kind {kind!r} is not one of {', '.join(KINDS)}"]


def build_builtin(kind: str, options: Mapping[str, Any]) -> BuiltinFilter:
    """The filter for valid options (check them with `option_problems` first)."""
    problems = option_problems(kind, options)
    if problems:
        raise ValueError(f"{kind}: " + "; ".join(problems))
    if kind == "pii":
        from proxy.filters.builtin.pii_filter import PiiFilter

        return PiiFilter.from_options(options)
    if kind == "prompt_injection":
        from proxy.filters.builtin.injection import InjectionFilter

        return InjectionFilter.from_options(options)
    from proxy.filters.builtin.content_policy import ContentPolicy

    return ContentPolicy.from_options(options)
