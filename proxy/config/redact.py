"""Keep credentials out of messages: config values, source excerpts and URLs.

One notion of "credential" serves every path: a value whose key looks like one (any
spelling of key, token, secret, password, auth...), or any value under a `headers` map.
Misspelled keys (`apikey`, `acces_key`) count too: they are the ones a user is most
likely to get an error about.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from proxy.config.problems import Path

MASK = "********"

_CREDENTIAL_WORDS = r"key|token|secret|passw|auth|credential|cookie|connection_string|dsn"
_CREDENTIAL_KEY = re.compile(_CREDENTIAL_WORDS, re.IGNORECASE)

# Every pattern here runs on text from anywhere (a prompt, an upstream's error), so each is
# linear in its input: it can only start where a run of its characters starts or at a
# literal, and its quantifiers are possessive (`*+`, `++`), so no run is scanned again from
# each of its positions. The credential words are then looked for in the one key found.
# (The plain `[\w.-]*(?:words)[\w.-]*` form took 18 s on one word of 16k letters.)
#
# `<key>: <value>` anywhere in a line, block or flow style: the key is a whole [\w.-] run,
# optionally quoted, and the value starts with neither space, `,`, `}`, `]`, `#` nor `$`
# (a `$VAR` names a variable: it is kept).
_PAIR_LEAD = re.compile(r"[\"']?(?<![\w.-])(?P<key>[\w.-]++)[\"']?\s*+:\s++(?=[^\s,}\]#$])")
_PAIR_VALUE = re.compile(r"[^,}\]#]*+")  # a value runs to the next `,`, `}`, `]` or `#`
# `?name=value` or `&name=value` in a URL.
_PARAM_LEAD = re.compile(r"[?&](?P<key>[\w.-]*+)=(?=[^&#\s'\"])")
_PARAM_VALUE = re.compile(r"[^&#\s'\"]*+")
# A URL's userinfo: `scheme://user:pass@`. Tried only from the start of a run of scheme
# characters; the scheme proper starts at the run's first letter, and what comes before it
# (digits, `+.-`) is kept with it.
_URL_USERINFO = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[0-9+.-]*+[a-z][a-z0-9+.-]*+://)[^/@\s'\"]++@", re.IGNORECASE
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s++[^\s,'\"}]++")


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
    line = _mask_credential_values(line, _PAIR_LEAD, _PAIR_VALUE)
    line = _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", line)
    line = _mask_credential_values(line, _PARAM_LEAD, _PARAM_VALUE)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", line)


def _mask_credential_values(text: str, lead: re.Pattern[str], value: re.Pattern[str]) -> str:
    """`text` with the value after each `lead` whose key holds a credential word masked.

    A lead whose key is not a credential is stepped over, not its value: a credential pair
    may sit inside that value (`note: api_key: sk-...`). Each part of the text is scanned
    once either way.
    """
    parts: list[str] = []
    done = pos = 0
    while found := lead.search(text, pos):
        pos = found.end()
        if _CREDENTIAL_KEY.search(found.group("key")):
            parts += (text[done:pos], MASK)
            done = pos = value.match(text, pos).end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


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


# Key-like tokens: a known key prefix (`sk-`, `key_`...) with 6+ characters after it, or a
# token of 40+ characters from one word boundary to another. As one regex
# (`\b[A-Za-z0-9_-]{40,}\b` the second), a run like `a-a-...a` followed by a long tail of
# dashes is scanned from each of its first ~40 boundaries, since each try must reach the
# run's end to learn that its last boundary is too near: linear, but ~40x over. So a long
# run is taken whole, possessively, and its token's end worked out once (_token_end).
_KEY_PREFIXED = r"\b(?:sk|pk|rk|ak|key)[-_][A-Za-z0-9_*.-]{6,}+"
_KEY_LIKE = re.compile(rf"(?P<prefixed>{_KEY_PREFIXED})|\b[A-Za-z0-9_-]{{40,}}+")
_KEY_PREFIXED_ONLY = re.compile(_KEY_PREFIXED)
_KEY_PREFIX_START = re.compile(r"\b(?:sk|pk|rk|ak|key)[-_]")
_WORD_BOUNDARY = re.compile(r"\b")
_TOKEN_MIN = 40


def redact_text(text: str, limit: int = 500) -> str:
    """Free text from elsewhere (an upstream's error message), with key-like tokens masked.

    Providers echo fragments of a rejected key ("Incorrect API key provided: sk-ab***yz").
    Linear in the text's length, whatever it holds.
    """
    text = _mask_key_like(redact_line(text))
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
    return _mask_key_like(name)


def _mask_key_like(text: str) -> str:
    parts: list[str] = []
    done = 0
    for start, end in key_like_spans(text):
        parts += (text[done:start], MASK)
        done = end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def key_like_spans(text: str) -> Iterator[tuple[int, int]]:
    """The (start, end) of each key-like token in `text`, left to right, in linear time."""
    pos = 0
    prefixed_only_until = 0  # before this, only the key-prefix form can still match
    while True:
        if pos < prefixed_only_until:
            # Inside a long run whose last boundary is too near: no token of 40 can start
            # here any more, but a prefixed key can (and runs on past the run's end).
            start = _KEY_PREFIX_START.search(text, pos, prefixed_only_until)
            found = start and _KEY_PREFIXED_ONLY.match(text, start.start())
            if found is None:
                pos = prefixed_only_until if start is None else start.start() + 1
                continue
            end = found.end()
        else:
            found = _KEY_LIKE.search(text, pos)
            if found is None:
                return
            end = found.end()
            if found.lastgroup is None:  # a long run, from a word boundary to its end
                end = _token_end(text, found.start(), end)
                if end - found.start() < _TOKEN_MIN:
                    pos, prefixed_only_until = found.start() + 1, found.end()
                    continue
        yield found.start(), end
        pos = end


def _token_end(text: str, start: int, end: int) -> int:
    """The last word boundary in `text[start:end]`, a run of [A-Za-z0-9_-] that starts at
    one: `end` itself, or where the run's last stretch of dashes or of word characters
    begins (between a dash and a word character there is always a boundary)."""
    if _WORD_BOUNDARY.match(text, end):
        return end
    if text[end - 1] == "-":
        return start + len(text[start:end].rstrip("-"))
    return max(text.rfind("-", start, end) + 1, start)
