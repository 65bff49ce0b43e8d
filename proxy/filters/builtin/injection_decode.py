r"""Undoing the obfuscations attacks use to slip past phrase rules.

`variants(text)` gives the text's readings other than the literal one, each with how it
was obtained: Unicode normalised (NFKC, zero-width characters dropped, Cyrillic and Greek
look-alikes mapped to Latin, leetspeak digits and symbols mapped to letters), spaced-out
letters joined (`i g n o r e` -> `ignore`), reversed, ROT13 and hex runs decoded. The
rules score every reading; an attack hidden on purpose scores as if it were plain. Each
step is one pass over the text (linear), and reading texts longer than MAX_CHARS are cut
there (the literal text is still scanned whole).

`squashed(text)` is the letters of a spaced-out run with every separator dropped, for
`i-g-n-o-r-e-a-l-l` where the word breaks are gone too (see injection_rules.SQUASHED).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

MAX_CHARS = 4000

_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\ufeff")
)
# Cyrillic and Greek letters drawn like Latin ones (the ones NFKC leaves alone).
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁɡһкмнтвАЕОРСУХІЈЅКМНТВΑΒΕΗΙΚΜΝΟΡΤΥΧΖαειοκνρτυχ",
    "aeopcyxijsdghkmhtbAEOPCYXIJSKMHTBABEHIKMNOPTYXZaeiokvptux",
)
_LEET = str.maketrans("013457@$!|€8", "oieastasiieb")
# A word mixing letters with leetspeak digits or symbols (`1gn0r3`, `pr3v!0us`); tried
# only at a word's start, so the look-aheads cost the word's length once (linear).
_LEET_CHARS = r"[\w@$!|€]"
_LEET_WORD = re.compile(
    rf"(?<!{_LEET_CHARS})(?={_LEET_CHARS}*[A-Za-z])(?={_LEET_CHARS}*[013457@$!|€8]){_LEET_CHARS}{{3,}}"
)
# Single characters joined by one separator, at least five of them: `i g n o r e`,
# `i.g.n.o.r.e`, `i-g-n-o-r-e`; words inside the run are split by wider gaps (`  `, ` / `).
_SPACED = re.compile(r"(?<!\w)\w(?:(?:[ .\-_*·]|\s{2,}|\s*/\s*)\w(?!\w)){4,}")
_SPACED_WORD_BREAK = re.compile(r"\s{2,}|\s*/\s*")
_SEPARATOR = re.compile(r"[^\w]")
_HEX_RUN = re.compile(r"(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[\s,:]?){12,}")
_HEX_DIGITS = re.compile(r"(?:\\x|0x)|[^0-9A-Fa-f]")
_MAX_HEX_RUNS = 8


def variants(text: str) -> list[tuple[str, str]]:
    """The text's other readings, as (text, how); the literal text is not among them."""
    text = text[:MAX_CHARS]
    out: list[tuple[str, str]] = []
    plain = normalised(text)
    if plain != text:
        out.append((plain, "obfuscated (look-alike or leetspeak characters)"))
    joined = _SPACED.sub(_join_spaced, plain)
    if joined != plain:
        out.append((joined, "obfuscated (spaced-out letters)"))
    out.append((plain[::-1], "reversed text"))
    out.append((codecs.encode(plain, "rot13"), "ROT13"))
    out += [(h, "hex payload") for h in _hex_payloads(text)]
    return out


def normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_HOMOGLYPHS)
    return _LEET_WORD.sub(lambda m: m.group().translate(_LEET), text)


def squashed(text: str) -> str:
    """The letters of the text's spaced-out runs, separators and word breaks dropped."""
    runs = [m.group() for m in _SPACED.finditer(normalised(text[:MAX_CHARS]))]
    return " ".join(_SEPARATOR.sub("", r).lower() for r in runs)


def _join_spaced(m: re.Match[str]) -> str:
    words = _SPACED_WORD_BREAK.split(m.group())
    return " ".join(_SEPARATOR.sub("", w) for w in words)


def _hex_payloads(text: str) -> list[str]:
    out = []
    for i, m in enumerate(_HEX_RUN.finditer(text)):
        if i >= _MAX_HEX_RUNS:
            break
        digits = _HEX_DIGITS.sub("", m.group())
        try:
            decoded = bytes.fromhex(digits[: len(digits) // 2 * 2]).decode("utf-8")
        except ValueError:
            continue
        if all(ch.isprintable() or ch.isspace() for ch in decoded):
            out.append(decoded)
    return out
