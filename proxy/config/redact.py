"""Keep credentials out of messages: config values, source excerpts and URLs.

One notion of "credential" serves every path: a value whose key looks like one (any
spelling of key, token, secret, password, auth...), or any value under a `headers` map.
Misspelled keys (`apikey`, `acces_key`) count too: they are the ones a user is most
likely to get an error about.
"""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from proxy.config.problems import Path

MASK = "********"

_CREDENTIAL_WORDS = r"key|token|secret|passw|auth|credential|cookie|connection_string|dsn"
_CREDENTIAL_KEY = re.compile(_CREDENTIAL_WORDS, re.IGNORECASE)
# `<credential-ish key>: <value>` anywhere in a line, block or flow style.
_CREDENTIAL_PAIR = re.compile(
    rf"(?P<lead>[\"']?[\w.-]*(?:{_CREDENTIAL_WORDS})[\w.-]*[\"']?\s*:\s+)"
    r"(?P<value>[^\s,}\]#$][^,}\]#]*)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,'\"}]+")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.IGNORECASE)
_URL_PARAM = re.compile(
    rf"(?P<name>[?&][\w.-]*(?:{_CREDENTIAL_WORDS})[\w.-]*=)[^&#\s'\"]+", re.IGNORECASE
)


def is_secret_path(path: Path) -> bool:
    """Values at these paths are credentials (every header value counts as one)."""
    keys = [part for part in path if isinstance(part, str)]
    if not keys:
        return False
    return bool(_CREDENTIAL_KEY.search(keys[-1])) or any(k.endswith("headers") for k in keys)


def redact_line(line: str) -> str:
    """A YAML source line with credential-looking values masked.

    Applied to every excerpt after the exact secret spans: it also covers files that did
    not parse, and credentials inside values that are not secrets themselves (a URL's
    userinfo or `?api_key=`). `$VAR` references are kept: they name a variable.
    """
    line = _CREDENTIAL_PAIR.sub(lambda m: m.group("lead") + MASK, line)
    line = _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", line)
    line = _URL_PARAM.sub(lambda m: m.group("name") + MASK, line)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", line)


def mask_spans(lines: list[str], spans) -> list[str]:
    """Source lines with each (start, end) span of a credential replaced by the mask."""
    cuts: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for start, end in spans:
        for number in range(start.line, min(end.line, len(lines)) + 1):
            first = start.column - 1 if number == start.line else 0
            last = end.column - 1 if number == end.line else len(lines[number - 1])
            cuts[number].append((first, last))
    masked = list(lines)
    for number, ranges in cuts.items():
        line = masked[number - 1]
        for first, last in sorted(ranges, reverse=True):  # right to left keeps columns valid
            line = line[:first] + MASK + line[last:]
        masked[number - 1] = line
    return masked


def redact_url(url: str) -> str:
    """A URL without userinfo and without credential-looking query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_line(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if _CREDENTIAL_KEY.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|ak|key)[-_][A-Za-z0-9_*.-]{6,}|\b[A-Za-z0-9_-]{40,}\b")


def redact_text(text: str, limit: int = 500) -> str:
    """Free text from elsewhere (an upstream's error message), with key-like tokens masked.

    Providers echo fragments of a rejected key ("Incorrect API key provided: sk-ab***yz").
    """
    text = _KEY_LIKE.sub(MASK, redact_line(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What _KEY_LIKE's tokens are made of: a cut inside such a run could leave a fragment of a
# key too short to be recognised as one, so names are cut before the run instead.
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-*."


def mask_key_like(name: str, limit: int = 256) -> str:
    """A name a client sent (a model), fit for logs, spans and messages: key-like tokens
    masked (clients put their key in `model` by mistake), control characters replaced and
    the length capped.

    Linear in `limit`, whatever the input's size: it runs on the request path.
    """
    if len(name) > limit:
        name = name[:limit].rstrip(_TOKEN_CHARS) + "..."
    if not name.isprintable():  # a newline in a name must not forge a log line
        name = "".join(ch if ch.isprintable() else "?" for ch in name)
    return _KEY_LIKE.sub(MASK, name)
