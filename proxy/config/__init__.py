"""Load, validate and normalize Plano config files."""

from proxy.config.loader import LoadResult, Mode, check_file, check_text, load_config
from proxy.config.model import Config
from proxy.config.problems import ConfigError, Problem, Severity

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
