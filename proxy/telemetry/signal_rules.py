"""The taxonomy, patterns and weights behind `proxy.telemetry.signals`.

Patterns are English only, matched on lower-cased text, and compiled once at import: the
analyzer runs for every conversation, so nothing here may be built per call.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Final, Literal, NamedTuple

# --- taxonomy: 7 groups, 25 types ---------------------------------------------------------

GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "misalignment": ("correction", "rephrase", "clarification"),
    "stagnation": ("dragging", "repetition"),
    "disengagement": ("escalation", "quit", "negative_stance"),
    "satisfaction": ("gratitude", "confirmation", "success"),
    "execution_failure": (
        "invalid_args",
        "bad_query",
        "tool_not_found",
        "auth_misuse",
        "state_error",
    ),
    "execution_loops": ("retry", "parameter_drift", "oscillation"),
    "environment_exhaustion": (
        "api_error",
        "timeout",
        "rate_limit",
        "network",
        "malformed_response",
        "context_overflow",
    ),
}
GROUP_OF: Final[dict[str, str]] = {t: g for g, types in GROUPS.items() for t in types}
TYPE_ORDER: Final[dict[str, int]] = {t: i for i, t in enumerate(GROUP_OF)}

# --- scoring ------------------------------------------------------------------------------
# A conversation starts at BASE_SCORE; each signal adds WEIGHTS[type] * confidence, and a
# group's total is capped at GROUP_CAPS[group] so that one noisy detector (ten retries of
# one call) cannot sink a score on its own. The score is clamped to 0..100 and banded.

BASE_SCORE: Final = 60  # no evidence either way: "neutral", never "poor"
WEIGHTS: Final[dict[str, float]] = {
    "gratitude": 12,
    "confirmation": 10,
    "success": 15,
    "correction": -10,
    "rephrase": -6,
    "clarification": -5,
    "dragging": -10,
    "repetition": -8,
    "escalation": -18,
    "quit": -22,
    "negative_stance": -12,
    "invalid_args": -7,
    "bad_query": -7,
    "tool_not_found": -9,
    "auth_misuse": -9,
    "state_error": -6,
    "retry": -10,
    "parameter_drift": -8,
    "oscillation": -12,
    "api_error": -8,
    "timeout": -8,
    "rate_limit": -6,
    "network": -8,
    "malformed_response": -8,
    "context_overflow": -10,
}
GROUP_CAPS: Final[dict[str, float]] = {
    "satisfaction": 35,
    "misalignment": -30,
    "stagnation": -25,
    "disengagement": -45,
    "execution_failure": -30,
    "execution_loops": -30,
    "environment_exhaustion": -25,
}
Quality = Literal["excellent", "good", "neutral", "poor", "severe"]
# Lowest score of each band, best first.
BANDS: Final[tuple[tuple[int, Quality], ...]] = (
    (85, "excellent"),
    (68, "good"),
    (45, "neutral"),
    (25, "poor"),
    (0, "severe"),
)

# Efficiency: full up to BASELINE_TURNS user turns, then 1 / (1 + 0.25 * excess turns);
# each loop or repetition multiplies it by LOOP_FACTOR. Below DRAGGING_BELOW (that is,
# 9 user turns or more) the conversation is "dragging".
BASELINE_TURNS: Final = 4
EXCESS_TURN_COST: Final = 0.25
LOOP_FACTOR: Final = 0.85
DRAGGING_BELOW: Final = 0.5

# --- limits -------------------------------------------------------------------------------

SCAN_HEAD: Final = 2048  # a pasted log must not stall the analyzer thread:
SCAN_TAIL: Final = 2048  # only the head and the tail of a long message are read
SNIPPET_MAX: Final = 120
SIMILARITY_SPAN: Final = 1024  # repetition and rephrase compare head + tail of this many
CACHE_SIZE: Final = 1024  # per-message results kept, per kind (user, tool, tokens)
LOOKBACK: Final = 2  # earlier messages of the same role compared for repetition/rephrase
REPETITION_MIN: Final = 0.85  # token-set Jaccard: at or above is a repetition
REPHRASE_MIN: Final = 0.5  # content-token Jaccard: from here up to REPETITION_MIN
MIN_TOKENS_REPEAT: Final = 5
MIN_TOKENS_REPHRASE: Final = 4

_STOPWORDS_TEXT = """
a an the is are was were be been am do does did i me my you your it its this that these
those to of in on for with and or but so if as at by from can could would should will
please how what why when where which who just also some any there here we our us
"""
STOPWORDS_BYTES: Final = frozenset(_STOPWORDS_TEXT.encode().split())


class Rule(NamedTuple):
    """A pattern, and what any of its matches must contain: one of `words` (user text,
    whose tokens are at hand) or one of the substrings `keys` (tool results, errors).

    Python's `re` tries every alternative at every position, so a dozen patterns over each
    message cost ~100 µs; a set or substring test first skips patterns that cannot match.
    """

    type: str
    confidence: float
    pattern: re.Pattern[str]
    words: frozenset[bytes] = frozenset()
    keys: tuple[str, ...] = ()  # neither words nor keys: the pattern always runs

    def may_match(self, low: str, tokens: frozenset[bytes] = frozenset()) -> bool:
        if self.words:
            return not self.words.isdisjoint(tokens)
        return not self.keys or any(key in low for key in self.keys)

    def search(self, low: str) -> re.Match[str] | None:
        return self.pattern.search(low) if self.may_match(low) else None

    def finditer(self, low: str, tokens: frozenset[bytes]) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(low) if self.may_match(low, tokens) else iter(())


def _compile(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    """Patterns run on lower-cased text: no IGNORECASE, which halves `re`'s time."""
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def _rule(type_: str, confidence: float, keys: str, *alternatives: str) -> Rule:
    return Rule(type_, confidence, _compile(alternatives), keys=tuple(keys.split("|")))


def _said(type_: str, confidence: float, words: str, *alternatives: str) -> Rule:
    return Rule(type_, confidence, _compile(alternatives), words=frozenset(words.encode().split()))


def _always(type_: str, confidence: float, *alternatives: str) -> Rule:
    return Rule(type_, confidence, _compile(alternatives))


# --- user-text rules ----------------------------------------------------------------------
# Several rules per type let strong phrasings carry more confidence than weak ones. After
# the confidence comes the rule's words: every match contains one of them as a token.

# Tokens are the UTF-8 words left once ASCII punctuation other than ' and _ is blanked
# out: bytes.translate + split costs half a regex findall.
_PUNCT = string.punctuation.replace("'", "").replace("_", "").encode()
TOKEN_TABLE: Final = bytes.maketrans(_PUNCT, b" " * len(_PUNCT))
# Code and quotes in a user's message are pasted material, not the user speaking.
CODE_RE: Final = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`|^[ \t]*>.*$", re.DOTALL | re.MULTILINE)
# A positive phrase up to two words after one of these is negated ("not quite right") or
# not about this conversation ("how it works"), unless a clause boundary comes between
# ("not perfect, but it works").
NEGATION_BEFORE: Final = re.compile(
    r"(?:\b(?:not|no|never|hardly|barely|nothing|isnt|doesnt|dont|didnt|wasnt|cant|wont"
    r"|arent|aint|if|whether|unless|until|how|why|when|where|what)\b|n't)[^\w,.;:!?]+"
    r"(?:(?!(?:but|and|so|though|yet)\b)[\w']+[^\w,.;:!?]+){0,2}$"
)
SENTENCE_ENDS: Final = re.compile(r"[.!?\n]")
CAPS_RUN: Final = re.compile(r"[A-Z]{2}")
CAPS_WORD: Final = re.compile(r"\b[A-Za-z]{2,}\b")

USER_RULES: Final[tuple[Rule, ...]] = (
    _said(
        "correction",
        0.9,
        "not wrong incorrect isn't wasn't isnt wasnt misunderstood misread",
        r"\b(?:that|this|it)(?:'s| is| was) (?:not (?:quite |exactly |really )?(?:right"
        r"|correct|true|it)|wrong|incorrect)\b",
        r"\b(?:that|this|it) (?:isn'?t|wasn'?t) (?:quite |exactly |really )?(?:right"
        r"|correct|true|it|what i)\b",
        r"\bnot (?:quite |exactly |really )?what i (?:asked|meant|wanted|said|need)",
        r"\byou(?:'ve| have)? (?:got (?:it|that|this) wrong|misunderstood|misread)\b",
        r"\bwrong (?:answer|file|function|value|one|column|table|again|result)\b",
    ),
    _said(
        "correction", 0.65, "no", r"^\s*no\b(?![,.!\s]+(?:problem|worries|rush|need|doubt|than))"
    ),
    _said(
        "correction",
        0.65,
        "said meant asked told instead incorrect work working",
        r"\bi (?:said|meant|asked for|told you)\b",
        r"\buse [\w.-]+ instead\b",
        r"\bincorrect\b",
        r"\b(?:doesn'?t|does not|didn'?t|did not) work\b",
        r"\b(?:isn'?t|is not|not) working\b",
    ),
    _said(
        "rephrase",
        0.85,
        "let words mean meant asking trying put clear specific rephrase rephrasing ask clarify",
        r"\blet me (?:rephrase|clarify|try again|put it (?:another way|differently))\b",
        r"\bin other words\b",
        r"\bwhat i(?:'m| am)? (?:mean|meant|asking|trying to say) is\b",
        r"\bto (?:put it another way|be (?:more )?(?:clear|specific))\b",
        r"\bput differently\b",
        r"\bi'?ll (?:rephrase|ask (?:again|differently))\b",
        r"\brephras(?:e|ing)\b",
        r"\bto clarify\b",
    ),
    _said(
        "clarification",
        0.8,
        "mean understand get confused lost clarify explain elaborate specific unclear confusing",
        r"\bwhat do you mean\b",
        r"\bi (?:don'?t|do not) (?:understand|get (?:it|what|that|this))\b",
        r"\bi(?:'m| am) (?:confused|lost|not sure what you mean)\b",
        r"\b(?:can|could) you (?:clarify|explain (?:that|what|this|again)|elaborate"
        r"|be more specific)\b",
        r"\bwhat does (?:that|this|it) mean\b",
        r"\b(?:unclear|confusing)\b",
    ),
    _said("clarification", 0.8, "huh what", r"^\s*(?:huh|what)\s*\?"),
    _said(
        "escalation",
        0.9,
        "speak talk chat human live real escalate connect complaint ticket",
        r"\b(?:speak|talk|chat) (?:to|with) (?:a |an |your |the )?(?:human|person|real"
        r" person|agent|representative|rep|manager|supervisor|someone)\b",
        r"\b(?:human|live|real) (?:agent|person|support|operator|being)\b",
        r"\bescalate\b",
        r"\bconnect me (?:to|with)\b",
        r"\bfile a (?:complaint|ticket)\b",
    ),
    _said("escalation", 0.6, "customer", r"\bcustomer (?:service|support)\b"),
    _said(
        "quit",
        0.9,
        "forget give giving done quit myself elsewhere else worth bother",
        r"\bforget (?:it|about it)\b",
        r"\bi give up\b",
        r"\bgiving up\b",
        r"\bi(?:'m| am) done\b",
        r"\bi quit\b",
        r"\bi'?ll (?:do|figure|fix|write) (?:it|this|that)(?: out)? myself\b",
        r"\bi'?ll (?:go|look) elsewhere\b",
        r"\b(?:use|try) (?:something|someone|another (?:tool|service)) else\b",
        r"\bnot worth it\b",
        r"\b(?:don'?t|do not) bother\b",
    ),
    _said(
        "quit", 0.65, "mind nevermind stop drop", r"\bnever ?mind\b", r"\blet'?s (?:stop|drop it)\b"
    ),
    _said(
        "negative_stance",
        0.85,
        "useless worthless terrible awful horrible pathetic ridiculous stupid dumb garbage trash"
        " annoying infuriating frustrated frustrating waste wtf ffs ugh ughh ughhh argh arghh"
        " shit crap fuck fucking fucked you still again",
        r"\b(?:useless|worthless|terrible|awful|horrible|pathetic|ridiculous|stupid|dumb"
        r"|garbage|trash|annoying|infuriating|frustrat(?:ed|ing))\b",
        r"\bwaste of (?:my )?time\b",
        r"\b(?:wtf|ffs|ugh+|argh+|shit|crap|fuck\w*)\b",
        r"(?<!can )(?<!could )(?<!would )(?<!will )(?<!should )(?<!do )(?<!did )"
        r"\byou (?:keep|always|never) [a-z]+",
        r"\bwhy do you (?:keep|always)\b",
        r"\b(?:still|again)\b[^.!?\n]{0,20}\b(?:broken|wrong|fail\w*|error\w*|crash\w*"
        r"|not work\w*|doesn'?t work)",
        r"\b(?:broke|broken|fail(?:s|ed|ing)?|crash(?:es|ed)?|wrong)\b[^.!?\n]{0,15}"
        r"\bagain\b",
    ),
    _said("negative_stance", 0.6, "seriously damn", r"\bseriously\s*\?", r"\bdamn\b"),
    _always("negative_stance", 0.6, r"[!?]{3,}"),  # a character class: scanned quickly
    _said(
        "gratitude",
        0.9,
        "thanks thank thx tysm kudos appreciate appreciated grateful",
        r"\bthank(?:s| you| u)\b",
        r"\b(?:thx|tysm|kudos)\b",
        r"\b(?:much|really|greatly) appreciated\b",
        r"\b(?:i )?appreciate (?:it|that|this|your help|the help)\b",
        r"\bgrateful\b",
    ),
    _said(
        "confirmation",
        0.85,
        "right correct perfect what exactly looks lgtm spot sense excellent awesome brilliant"
        " great nice wonderful amazing",
        r"\b(?:that|this|it)(?:'s| is) (?:exactly )?(?:right|correct|perfect"
        r"|what i (?:wanted|needed|meant))\b",
        r"^\s*exactly\b",
        r"\bexactly (?:right|what i (?:wanted|needed|meant))\b",
        r"\blooks (?:good|great|right|correct|perfect)\b",
        r"\b(?:lgtm|spot on)\b",
        r"\bmakes sense\b",
        r"^\s*(?:perfect|excellent|awesome|brilliant|great|nice|wonderful|amazing)\b",
        r"\b(?:perfect|excellent|awesome|brilliant|great|amazing)\s*!",
    ),
    _said("confirmation", 0.6, "yes yep yeah yup", r"^\s*(?:yes|yep|yeah|yup)\b(?!\s*\?)"),
    _said(
        "success",
        0.9,
        "works worked did trick fixed solved resolved gone working pass passes passed passing"
        " green succeeded",
        r"\b(?:it|that|this)(?: now)? (?:works|worked|did it|did the trick|fixed it"
        r"|solved it)\b",
        r"\b(?:it|that|this)(?:'s| is) (?:now )?working\b",
        r"\bworks (?:now|perfectly|great|fine)\b",
        r"\bworking now\b",
        r"\b(?:problem|issue|bug|error)\s+(?:is\s+)?(?:solved|fixed|resolved|gone)\b",
        r"\ball (?:the )?(?:tests|checks) (?:pass(?:ed|ing)?|are green)\b",
        r"\b(?:tests?|build|deploy(?:ment)?) (?:pass(?:es|ed)?|is green|succeeded)\b",
        r"\bsolved\b",
    ),
)
# Which user rules a message's tokens can set off: one set intersection per message
# instead of a test per rule.
USER_TRIGGERS: Final[dict[bytes, tuple[int, ...]]] = {
    word: tuple(i for i, rule in enumerate(USER_RULES) if word in rule.words)
    for word in frozenset().union(*(rule.words for rule in USER_RULES))
}
USER_TRIGGER_WORDS: Final = frozenset(USER_TRIGGERS)
USER_ALWAYS: Final = frozenset(i for i, rule in enumerate(USER_RULES) if not rule.words)

# These phrases contain a gratitude word but are not thanks.
NOT_GRATITUDE: Final = re.compile(
    r"\bno,?\s+thank|\bthanks? for nothing\b|\bthanks? (?:in advance|anyway)\b"
)
# A message that also shows these cannot count as satisfied ("great, it broke again").
SPOILS_SATISFACTION: Final = frozenset({"correction", "negative_stance", "quit", "escalation"})
# Misalignment and satisfaction are reactions: they need an assistant message before them.
REACTIONS: Final = frozenset(
    {"correction", "rephrase", "clarification", "gratitude", "confirmation", "success"}
)

# --- tool-result and error rules ----------------------------------------------------------
# Most tool results are data; a result is read as a failure only if its head or tail
# says so, which keeps a search hit that mentions "timeout" from being a timeout.

FAILURE_HINT: Final = _rule(
    "failure",
    1.0,
    "error|exception|traceback|fail|fatal|denied|refused|unauthori|forbidden|not found|exist"
    "|timed out|invalid|unknown|cannot|can't|cant|unable|no such|exceeded|too many|malformed"
    "|false|status",
    r"\b(?:error|errors|exception|traceback|failed|failure|fatal|denied|refused|unauthori[sz]ed"
    r"|forbidden|not found|does not exist|doesn'?t exist|timed out|invalid|unknown|cannot"
    r"|can'?t|unable|no such|exceeded|too many|malformed)\b",
    r"\"(?:ok|success)\"\s*:\s*false",
    r"\"status\"\s*:\s*\"?(?:error|failed|[45]\d\d)",
)
HINT_SPAN: Final = 300


def _status(*codes: str) -> str:
    return rf"(?:status|http|error|code|returned)\D{{0,8}}\b(?:{'|'.join(codes)})\b"


# First match wins, so the specific rules come before the generic ones.
TOOL_RULES: Final[tuple[Rule, ...]] = (
    _rule(
        "context_overflow",
        1.0,
        "context|too many tokens|too long|token limit",
        r"context[_ ](?:length|window)",
        r"maximum context",
        r"too many tokens",
        r"(?:prompt|input) is too long",
        r"token limit",
    ),
    _rule(
        "rate_limit",
        1.0,
        "429|rate|too many requests|quota|exhausted|throttl",
        _status("429"),
        r"rate[_ -]?limit",
        r"too many requests",
        r"quota exceeded",
        r"resource[_ ]exhausted",
        r"throttl",
    ),
    _rule(
        "timeout",
        1.0,
        "408|504|time|deadline",
        _status("408", "504"),
        r"timed? ?out",
        r"\btimeout\b",
        r"deadline exceeded",
    ),
    _rule(
        "network",
        1.0,
        "connection|econn|network|unreachable|resolution|resolve|getaddrinfo|ssl|broken pipe"
        "|remote end",
        r"connection (?:refused|reset|error|aborted|closed|failed)",
        r"econn(?:refused|reset)",
        r"network (?:error|is unreachable|unreachable)",
        r"(?:host|name) (?:unreachable|resolution)",
        r"could not resolve",
        r"getaddrinfo",
        r"\bssl ?error\b",
        r"broken pipe",
        r"remote end closed",
    ),
    _rule(
        "tool_not_found",
        1.0,
        "tool|function|command",
        r"unknown (?:tool|function|command)",
        r"(?:tool|function|command) ['\"`]?[\w.-]*['\"`]? ?(?:not found|does not exist"
        r"|is not (?:defined|available|registered))",
        r"no such (?:tool|function|command)",
        r"not a valid tool",
        r"unrecognized (?:tool|function)",
    ),
    _rule(
        "auth_misuse",
        1.0,
        "401|403|unauthori|forbidden|denied|not authorized|not permitted|api key|api_key"
        "|apikey|token|credentials|authentication|insufficient",
        _status("401", "403"),
        r"unauthori[sz]ed",
        r"\bforbidden\b",
        r"permission denied",
        r"access denied",
        r"not (?:authorized|permitted)",
        r"invalid (?:api[_ ]?key|token|credentials)",
        r"authentication (?:failed|required)",
        r"missing (?:api[_ ]?key|credentials|token)",
        r"insufficient (?:permissions|scope)",
    ),
    _rule(
        "bad_query",
        1.0,
        "no such|exist|unknown column|syntax error|invalid|malformed query|ambiguous"
        "|operationalerror|programmingerror",
        r"no such (?:table|column)",
        r"(?:table|column|relation) ['\"`]?[\w.]+['\"`]? does not exist",
        r"unknown column",
        r"syntax error",
        r"invalid (?:query|sql|filter|regex)",
        r"malformed query",
        r"ambiguous column",
        r"operationalerror|programmingerror",
    ),
    _rule(
        "invalid_args",
        1.0,
        "400|422|invalid|missing|required|unexpected|validation|not of type|must be"
        "|typeerror|valueerror|bad request|out of range",
        _status("400", "422"),
        r"invalid (?:argument|parameter|param|value|input|type|format)",
        r"missing (?:required )?(?:argument|parameter|field|property)",
        r"required (?:argument|parameter|field|property)",
        r"unexpected (?:keyword )?argument",
        r"validation (?:error|failed)",
        r"is not of type",
        r"must be (?:a|an|one of)\b",
        r"typeerror|valueerror",
        r"bad request",
        r"out of range",
    ),
    _rule(
        "malformed_response",
        1.0,
        "malformed|json|expecting value|unexpected|parse",
        r"malformed",
        r"invalid json",
        r"jsondecodeerror",
        r"expecting value",
        r"unexpected (?:token|end of (?:json|input))",
        r"(?:could not|failed to|unable to) parse",
        r"not valid json",
    ),
    _rule(
        "state_error",
        1.0,
        "404|409|412|not found|exist|no such|already|invalid state|not |conflict|precondition"
        "|session|closed|locked|stale|no active",
        _status("404", "409", "412"),
        r"not found",
        r"(?:does not|doesn'?t) exist",
        r"no such (?:file|directory|resource|record|session|user|order|item|key)",
        r"already (?:exists|closed|deleted|running|in progress)",
        r"invalid state",
        r"not (?:initiali[sz]ed|ready|open|started|running|connected)",
        r"\bconflict\b",
        r"precondition",
        r"session (?:expired|closed)",
        r"is (?:closed|locked|stale)",
        r"no active",
    ),
    _rule(
        "api_error",
        1.0,
        "5|internal|unavailable|bad gateway|server error|upstream|overloaded",
        _status(r"5\d\d"),
        r"internal (?:server )?error",
        r"service unavailable",
        r"bad gateway",
        r"server error",
        r"upstream (?:error|failure)",
        r"overloaded",
    ),
)
ENVIRONMENT_TYPES: Final = frozenset(GROUPS["environment_exhaustion"])
# The gateway's own error text is only read for environment causes.
ERROR_RULES: Final = tuple(r for r in TOOL_RULES if r.type in ENVIRONMENT_TYPES)
