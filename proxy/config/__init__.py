"""Load, validate and normalize Plano config files.

The names below load on first use (PEP 562): a module that needs only a leaf such as
`proxy.config.redact` (the trace store does) should not pay for the loader, the schema
and the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.config.loader import LoadResult, Mode, check_file, check_text, load_config
    from proxy.config.model import Config
    from proxy.config.problems import ConfigError, Problem, Severity

_HOMES = {
    "LoadResult": "proxy.config.loader",
    "Mode": "proxy.config.loader",
    "check_file": "proxy.config.loader",
    "check_text": "proxy.config.loader",
    "load_config": "proxy.config.loader",
    "Config": "proxy.config.model",
    "ConfigError": "proxy.config.problems",
    "Problem": "proxy.config.problems",
    "Severity": "proxy.config.problems",
}

__all__ = [
    "Config",
    "ConfigError",
    "LoadResult",
    "Mode",
    "Problem",
    "Severity",
    "check_file",
    "check_text",
    "load_config",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value
