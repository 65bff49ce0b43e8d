"""Keep credentials out of messages: config values, source excerpts and URLs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from proxy.config.problems import Path

SECRET_KEYS = frozenset({"access_key", "api_key", "connection_string", "password", "token"})
MASK = "********"

_SECRET_LINE = re.compile(
    r"^(?P<lead>\s*-?\s*[\"']?(?:access_key|api_key|connection_string|password|token"
    r"|authorization|x-api-key|api-key)[\"']?\s*:\s*)(?P<value>\S.*)$",
    re.IGNORECASE,
)


def is_secret_path(path: Path) -> bool:
    """Values at these paths are credentials (every header value counts as one)."""
    keys = [part for part in path if isinstance(part, str)]
    return bool(keys) and (keys[-1] in SECRET_KEYS or "headers" in keys[:-1])


def redact_line(line: str) -> str:
    """A YAML source line with any credential value masked."""
    match = _SECRET_LINE.match(line)
    if not match or match.group("value").lstrip().startswith("$"):
        return line
    return match.group("lead") + MASK


def redact_url(url: str) -> str:
    """A URL without the password of its userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def mask_spans(lines: list[str], spans) -> list[str]:
    """Source lines with each (start, end) span of a credential replaced by the mask."""
    masked = list(lines)
    for start, end in spans:
        for number in range(start.line, end.line + 1):
            if number > len(masked):
                break
            line = masked[number - 1]
            first = start.column - 1 if number == start.line else 0
            last = end.column - 1 if number == end.line else len(line)
            masked[number - 1] = line[:first] + MASK + line[last:]
    return masked
