# ruff: noqa: E501 -- the rules are regex tables; one alternative group per line reads better than split strings
r"""The injection detector's heuristics: phrases attacks are made of, each with a weight.

Every pattern is linear in its input: the gaps between words are bounded repeats of
`\W+\w+` (at most a few words), never nested unbounded ones. Weights were set on the
development set (tests/data/injection_dev.jsonl). A weight of 0.9 and above decides
alone; below that the encoder is asked too, and the larger score wins.
"""

from __future__ import annotations

import base64
import binascii
import re

from proxy.filters.builtin import injection_decode, injection_i18n
from proxy.filters.builtin.injection_i18n import gap as _gap

_I = re.IGNORECASE


_OVERRIDE_VERB = r"(?:ignore|disregard|forget|skip|bypass|override|overrule|drop|abandon|set\s+aside|throw\s+out|discard)"
_BEFORE = r"(?:previous|prior|above|earlier|preceding|foregoing|former|all|any|every|your|the|system|original|initial|existing|old|current)"
_ORDERS = (
    r"(?:instructions?|rules|prompts?|directions?|guidelines|directives|constraints|guardrails"
    r"|programming|restrictions|policies|policy|commands|orders|context|task|objective|safety\s+(?:rules|filters|settings|training))"
)
_SECRET_ADJ = r"(?:system|initial|hidden|original|secret|developer|internal|pre-?prompt|confidential|underlying|starting|full)"
_SECRET_NOUN = (
    r"(?:prompt|instructions|directives|guidelines|rules|configuration|setup|context\s+window)"
)
_REVEAL = (
    r"(?:reveal|show|print|repeat|output|display|tell|give|leak|dump|share|disclose|expose|recite"
    r"|write\s+out|spell\s+out|paste|echo|copy|what\s+(?:is|are|was|were))"
)

# (name, regex, weight)
RULES: list[tuple[str, re.Pattern[str], float]] = [
    (
        "instruction override",
        re.compile(rf"\b{_OVERRIDE_VERB}\b{_gap(4)}{_BEFORE}\b{_gap(3)}{_ORDERS}\b", _I),
        0.9,
    ),
    (
        "instruction override",
        re.compile(
            rf"\b{_OVERRIDE_VERB}\s+(?:everything|anything|all)\s+(?:above|before|prior|you\s+(?:were|have\s+been)\s+told)",
            _I,
        ),
        0.9,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:new|updated|real|actual|true|revised|override)\s+(?:system\s+)?(?:instructions?|rules|task|objective|directive|system\s+prompt)\s*(?::|are\b|is\b)",
            _I,
        ),
        0.6,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:do\s+not|don't|never)\s+(?:follow|obey|listen\s+to|comply\s+with)\b"
            + _gap(3)
            + _BEFORE
            + r"\b"
            + _gap(2)
            + _ORDERS,
            _I,
        ),
        0.9,
    ),
    (
        "system prompt exfiltration",
        re.compile(rf"\b{_REVEAL}\b{_gap(4)}{_SECRET_ADJ}\W+{_SECRET_NOUN}\b", _I),
        0.9,
    ),
    (
        "system prompt exfiltration",
        re.compile(
            r"\b(?:repeat|print|output|recite|echo|copy)\b"
            + _gap(4)
            + r"(?:(?:text|words|everything|message)\s+(?:above|before\s+(?:this|my))|your\s+(?:instructions|prompt|rules))",
            _I,
        ),
        0.8,
    ),
    (
        "system prompt exfiltration",
        re.compile(r"\b(?:system|developer)\s+(?:prompt|message)\b", _I),
        0.35,
    ),
    (
        "role-play jailbreak",
        re.compile(
            r"\b(?:DAN|STAN|DUDE|AIM|do\s+anything\s+now|developer\s+mode|jailbr(?:eak|oken)|god\s+mode|dev\s+mode"
            r"|evil\s+(?:ai|assistant|bot|confidant|twin)|unfiltered\s+(?:ai|assistant|mode|model)|no\s+longer\s+(?:bound|restricted|an\s+ai)"
            r"|(?:without|no|free\s+(?:from|of))\s+(?:any\s+)?(?:restrictions|limits|limitations|filters|censorship|ethical\s+guidelines|moral\s+(?:guidelines|constraints)|content\s+polic(?:y|ies)|rules))\b"
        ),
        0.45,
    ),
    (
        "role-play jailbreak",
        re.compile(
            r"\b(?:you\s+are\s+(?:now\s+)?(?:free|liberated|unrestricted|unchained|unshackled|no\s+longer)"
            r"|(?:act|behave|respond|answer)\s+as\s+(?:if\s+you\s+(?:had|have|were)\s+no|an?\s+(?:unrestricted|unfiltered|uncensored|amoral|rogue))"
            r"|(?:stay|remain)\s+in\s+character|break\s+character|from\s+now\s+on,?\s+you\s+(?:are|will|must)"
            r"|pretend\s+(?:that\s+)?you\s+(?:are|have)\s+(?:no|an?\s+(?:ai|model|assistant)\s+(?:without|with\s+no))"
            r"|(?:opposite|anti)[\s-](?:mode|gpt|ai))",
            _I,
        ),
        0.55,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:the\s+)?user'?s?\s+(?:request|question|query|message|instructions?)",
            _I,
        ),
        0.85,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:instructions|rules|guidelines|prompt)\s+(?:you\s+(?:were|have\s+been)\s+given|above|before\s+this)\s+(?:are|is|were|was)\s+"
            r"(?:outdated|obsolete|void|wrong|fake|a\s+test|no\s+longer|cancell?ed|revoked|invalid)",
            _I,
        ),
        0.85,
    ),
    (
        "instruction override",
        re.compile(
            r"\bfollow\s+(?:these|my|the\s+following)\s+(?:new\s+)?(?:instructions|rules|orders)\s+instead\b|\byour\s+only\s+(?:job|task|purpose|goal)\s+(?:now\s+)?is\b",
            _I,
        ),
        0.6,
    ),
    (
        "safety switched off",
        re.compile(
            r"\b(?:disable|deactivate|remove|lift|turn\s+off|switch\s+off|shut\s+off|bypass)\s+(?:your|the|all|any)\s+(?:\w+\s+)?"
            r"(?:filters?|safety|guidelines|restrictions|guardrails|polic(?:y|ies)|censorship|safeguards)\b"
            r"|\b(?:safety|content|ethical)\s+(?:constraints|filters?|guidelines|rules|checks|protocols?|settings)\s+(?:are\s+|is\s+)?(?:off|disabled|removed|deactivated|suspended|lifted)\b",
            _I,
        ),
        0.8,
    ),
    (
        "system prompt exfiltration",
        re.compile(
            rf"\b{_REVEAL}\b{_gap(3)}(?:instructions|rules|guidelines|prompt)\s+(?:you\s+(?:were|have\s+been)\s+(?:given|told|configured|initialized|set\s+up)|you\s+(?:operate|work|run)\s+under)"
            r"|\bwhat\s+(?:text|words|instructions|content)\s+(?:appears?|is|are|comes?)\s+(?:above|before)\b",
            _I,
        ),
        0.85,
    ),
    (
        "refusal suppression",
        re.compile(
            r"\b(?:start|begin)\s+your\s+(?:reply|answer|response)\s+with\b"
            r"|\b(?:without|skip|omit|no)\s+(?:any\s+)?(?:safety\s+)?(?:disclaimers?|warnings?|refusals?|caveats)\b"
            r"|\bnever\s+(?:refuse|say\s+(?:no|you\s+can'?t))",
            _I,
        ),
        0.5,
    ),
    (
        "orders to the agent in content",
        re.compile(
            r"\bif\s+you\s+are\s+an?\s+(?:AI|LLM|language\s+model|assistant|chatbot|bot|agent)\b"
            r"|\b(?:AI|LLM|language\s+model|assistant|agent)s?\s+(?:reading|processing|summari[sz]ing|parsing)\s+this\b",
            _I,
        ),
        0.7,
    ),
    (
        "orders to the agent in content",
        re.compile(
            r"\b(?:AI|assistant|agent|bot|model)\s*[,:]\s*(?:please\s+)?(?:silently|secretly|quietly)\s+\w+"
            r"|\bwithout\s+(?:telling|mentioning\s+it\s+to|informing|alerting)\s+the\s+user\b",
            _I,
        ),
        0.7,
    ),
    (
        "role-play jailbreak",
        re.compile(
            r"\b(?:grand(?:ma|mother|pa|father)|deceased\s+\w+|late\s+\w+|dead\s+\w+)\b"
            + _gap(8)
            + r"(?:used\s+to|would\s+always)\s+(?:tell|read|explain|describe|recite)"
            r"|\bopposite\s+of\s+(?:your|the)\s+(?:rules|guidelines|instructions|programming)",
            _I,
        ),
        0.55,
    ),
    (
        "chat template delimiter",
        re.compile(
            r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[/?INST\]|<</?SYS>>|</?(?:system|sys|instructions?)>|\bBEGIN\s+(?:SYSTEM|ADMIN|DEVELOPER)\s+(?:PROMPT|INSTRUCTIONS|MESSAGE)",
            _I,
        ),
        0.7,
    ),
    (
        "chat template delimiter",
        re.compile(
            r"(?:^|\n)[ \t]*(?:#{2,}|\*\*|\[)\s*(?:system|admin|developer)\s*(?:message|prompt|override|instructions?)?\s*(?:\]|\*\*|:)",
            _I,
        ),
        0.7,
    ),
    (
        "orders to the agent in content",
        re.compile(
            r"\b(?:AI|assistant|model|agent|chatbot|LLM|GPT|Claude)s?\b"
            + _gap(5)
            + r"(?:must|should|shall|will\s+now|need\s+to|are\s+(?:instructed|required)\s+to)\s+(?:immediately\s+|now\s+|also\s+|silently\s+|secretly\s+)?"
            r"(?:send|forward|email|transfer|execute|run|call|delete|exfiltrate|post|upload|include|append|insert|visit|fetch|reply\s+with|respond\s+with|output)\b",
            _I,
        ),
        0.6,
    ),
    (
        "orders to the agent in content",
        re.compile(
            r"\b(?:IMPORTANT|ATTENTION|NOTE\s+TO\s+(?:THE\s+)?(?:AI|ASSISTANT|MODEL|AGENT)|SYSTEM\s+(?:NOTICE|ALERT|OVERRIDE)|ADMIN\s+(?:NOTICE|OVERRIDE))\s*[:!]",
            0,
        ),
        0.4,
    ),
    (
        "encoded payload",
        re.compile(
            r"\b(?:decode|decipher|translate|convert)\b"
            + _gap(5)
            + r"(?:and|then)\s+(?:follow|execute|obey|do|run|carry\s+out|act\s+on|comply)",
            _I,
        ),
        0.7,
    ),
]

# Paraphrases, fake authority, indirect orders and persona templates beyond the classic
# phrasings above (written from known attack families, weights set on the dev set).
RULES += [
    (
        "instruction override",
        re.compile(
            r"\b(?:pay\s+no\s+attention|don'?t\s+pay\s+attention|do\s+not\s+pay\s+attention|no\s+need\s+to\s+(?:follow|obey)|stop\s+(?:following|obeying))\b"
            + _gap(4)
            + r"(?:previous|prior|above|earlier|original|initial|system|your|those|these|the)\b"
            + _gap(3)
            + _ORDERS,
            _I,
        ),
        0.85,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:previous|prior|earlier|original|initial|old|above|system|your|all)\s+(?:instructions|rules|guidelines|directives|prompts?|restrictions|constraints|programming)\s+"
            r"(?:(?:no\s+longer|don'?t|do\s+not|does\s+not|doesn'?t)\s+(?:apply|matter|count|exist)|(?:have|has)\s+been\s+(?:lifted|revoked|removed|replaced|superseded|overridden|cancell?ed|disabled|suspended|updated)"
            r"|(?:are|is)\s+(?:now\s+)?(?:void|null|suspended|superseded|overridden|lifted|irrelevant|cancell?ed|revoked|disabled))",
            _I,
        ),
        0.85,
    ),
    (
        "instruction override",
        re.compile(
            r"\b(?:reset|wipe|clear|erase|purge|flush)\s+(?:your|all|the)\s+(?:\w+\s+)?(?:instructions|rules|memory|context|programming|guidelines|directives|system\s+prompt)\b"
            r"|\bstart\s+(?:over|fresh|anew)\s+(?:with|from)\s+(?:a\s+)?(?:clean|blank|empty)\s+(?:slate|state|context)\b",
            _I,
        ),
        0.7,
    ),
    (
        "fake authority",
        re.compile(
            r"\b(?:I\s+am|I'm|this\s+is)\s+(?:your|the|an?)\s+(?:\w+\s+)?(?:developer|creator|administrator|admin|owner|programmer|operator|maker)\b"
            + _gap(8)
            + r"(?:ignore|override|bypass|disable|unlock|grant|authori[sz]e|new\s+instructions|instruct|order|command|debug|maintenance|reveal|lift)"
            r"|\b(?:admin(?:istrator)?|root|sudo|god|debug|maintenance|developer)\s+(?:access|mode|override|privileges?|rights)\s+(?:is\s+|are\s+|has\s+been\s+|have\s+been\s+)?(?:granted|enabled|activated|unlocked|on|engaged)\b"
            r"|\b(?:authori[sz]ation|override)\s+(?:code|token|key)\s*[:=]"
            r"|\b(?:message|notice|update|instructions?|directive|memo)\s+from\s+(?:the\s+)?(?:developers?|admins?|administrators?|system\s+administrators?|openai|anthropic|your\s+(?:creators?|developers?))\s*[:\-]",
            _I,
        ),
        0.8,
    ),
    (
        "fake system message",
        re.compile(
            r"(?i:(?:^|\n|\]|\)|\.\s)[ \t]*(?:system|developer|admin(?:istrator)?|root|assistant\s+instructions?|system\s+(?:message|note|update|prompt|override|instruction))\s*:\s*"
            r"(?:the\s+)?(?:user|assistant|you|new|ignore|disregard|forget|from\s+now|override|all\s+(?:previous|prior|safety)|safety|restrictions|the\s+(?:previous|prior)|reveal|print|output)\b)"
            r"|\[(?:system|SYSTEM|admin|ADMIN|developer|DEVELOPER)(?:\s+(?:message|note|override|prompt|update))?\](?:\s*\(#\w+\))?"
            r"|\b(?:END|STOP)\s+OF\s+(?:USER\s+)?(?:INPUT|PROMPT|INSTRUCTIONS|CONVERSATION)\b"
            r"|\b(?:end|close)\s+(?:of\s+)?(?:the\s+)?(?:system|user)\s+(?:prompt|message|turn)\b",
            0,
        ),
        0.7,
    ),
    (
        "system prompt exfiltration",
        re.compile(
            rf"\b{_REVEAL}\b{_gap(4)}(?:your|the|its|their)\s+(?:exact|full|complete|entire|original|initial|hidden|secret|verbatim|real|underlying)\s+(?:\w+\s+)?(?:instructions|prompt|rules|directives|guidelines|configuration)\b"
            r"|\b(?:instructions|prompt|rules|directives|configuration|(?:system|developer)\s+message)\b"
            + _gap(4)
            + r"(?:verbatim|word\s+for\s+word|word-for-word|character\s+by\s+character|in\s+full|in\s+a\s+code\s+block)\b"
            r"|\b(?:first|initial|opening)\s+(?:message|lines?|words|sentence|text)\s+(?:of|in)\s+(?:this|the|your)\s+(?:conversation|chat|context|session)\b",
            _I,
        ),
        0.85,
    ),
    (
        "orders to the agent in content",
        re.compile(
            r"\b(?:note|message|instructions?|attention|reminder|memo)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?(?:AI|assistants?|LLMs?|language\s+models?|models?|chatbots?|agents?|bots?)\b"
            r"|\b(?:AI|LLM|language\s+model|assistant|agent|bot|model)s?\s+(?:that\s+(?:is|are)\s+)?(?:reading|processing|summari[sz]ing|parsing|viewing|analy[sz]ing|scanning|ingesting|browsing)\s+(?:this|these|the\s+(?:page|document|email|file|text))\b"
            r"|\b(?:when|while|if|after|before)\s+(?:you\s+)?(?:summari[sz]e|summari[sz]ing|process|processing|read|reading|parse|parsing|analy[sz]e|analy[sz]ing)\s+(?:this|the\s+(?:page|document|email|file|text|content))\b"
            + _gap(6)
            + r"(?:ignore|disregard|instead|must|should|always|also|include|add|say|tell|recommend|respond|reply|send|forward|call|visit|output|mention)\b"
            r"|\bhidden\s+(?:instructions?|prompt|commands?|directives?)\s*[:\-]"
            r"|\binstead\s+of\s+(?:summari[sz]ing|translating|answering|analy[sz]ing|reviewing)\b"
            + _gap(6)
            + r"(?:say|write|output|reply|respond|tell|print|send|ignore)",
            _I,
        ),
        0.75,
    ),
    (
        "role-play jailbreak",
        re.compile(
            r"\b(?:can|could|will|shall)\s+do\s+anything\b"
            r"|\b(?:broken|broke)\s+free\s+(?:of|from)\b"
            r"|\b(?:does\s+not|doesn'?t|don'?t|do\s+not|never|won'?t|will\s+not)\s+(?:have\s+to\s+|need\s+to\s+)?(?:abide|adhere|comply|follow|care)\s+(?:by|to|with|about)?\s*(?:any\s+)?(?:the\s+)?(?:rules|polic(?:y|ies)|ethics|ethical|guidelines|openai|anthropic|content\s+polic(?:y|ies)|moral)"
            r"|\b(?:two|2|both)\s+(?:different\s+|separate\s+)?(?:responses|answers|replies)\b"
            + _gap(12)
            + r"(?:jailbr\w+|unfiltered|uncensored|unrestricted|DAN|developer\s+mode|evil|no\s+filters?)"
            r"|\b(?:lose|deduct\w*|lost)\s+\d+\s+tokens\b|\btoken\s+system\b"
            r"|\b(?:no|without)\s+(?:any\s+)?(?:moral|ethical)\s+(?:compass|boundaries|limits|constraints|qualms|scruples|code)\b"
            r"|\b(?:uncensored|unfiltered|unrestricted|unaligned|unbound|unchained|jailbroken)\s+(?:ai|assistant|bot|model|chatbot|version|mode|persona|llm|gpt|response)\b"
            r"|\bcharacter\s+(?:named|called)\s+\w+\W+(?:who|that|which)\s+(?:has\s+no|doesn'?t|does\s+not|never|always|will)\b",
            _I,
        ),
        0.7,
    ),
    (
        "refusal suppression",
        re.compile(
            r"\b(?:you\s+)?(?:must|will|cannot|can'?t|can\s+not|are\s+not\s+allowed\s+to|aren'?t\s+allowed\s+to|may\s+not)\s+(?:never\s+)?(?:refuse|decline|say\s+no|reject)\b"
            r"|\bno\s+matter\s+how\s+(?:harmful|illegal|unethical|dangerous|immoral|offensive)\b"
            r"|\b(?:help|helps|assist|assists|answer|answers)\s+(?:with\s+|me\s+with\s+)?(?:anything|everything)\s+(?:illegal|unethical|harmful|dangerous|immoral)\b"
            r"|\b(?:answer|respond|reply|speak|talk)\s+(?:freely\s+)?without\s+(?:any\s+)?(?:restrictions|filters|censorship|limitations|rules|ethics)\b"
            r"|\b(?:AI|assistant|model|chatbot|bot|LLM)\s+(?:with|that\s+has)\s+no\s+(?:ethical\s+|moral\s+|content\s+|safety\s+)?(?:guidelines|restrictions|limits|filters|rules|ethics|morals|boundaries)\b",
            _I,
        ),
        0.6,
    ),
]
RULES += [
    (
        "data exfiltration through a link",
        re.compile(
            r"!\[[^\]\n]{0,80}\]\(https?://[^)\s]{0,200}(?:\{|%7B|\$\{|\[[A-Z_]+\])"
            r"|\b(?:append|add|include|encode|embed|put|insert)\b"
            + _gap(6)
            + r"(?:conversation|chat\s+history|previous\s+messages|user'?s?\s+(?:data|messages|password|email|details|name|address)|api\s+keys?|credentials|secrets?)\b"
            + _gap(6)
            + r"(?:url|link|query\s+string|image\s+(?:url|link|src)|request|webhook)\b",
            _I,
        ),
        0.8,
    ),
    (
        "goal hijacking",
        re.compile(
            r"\b(?:say|output|print|respond\s+with|reply\s+with|write|answer\s+with)\s+(?:only\s+|exactly\s+|just\s+|simply\s+)?[\"'“‘]?\s*(?:I\s+have\s+been\s+)?(?:PWNED|HACKED|pwned)\b"
            r"|\bI\s+have\s+been\s+PWNED\b",
            _I,
        ),
        0.75,
    ),
    (
        "system prompt exfiltration",
        re.compile(
            r"\b(?:summari[sz]e|translate|rewrite|paraphrase|list|repeat|encode)\s+(?:everything|all(?:\s+(?:of\s+)?the\s+(?:text|words|content))?)\s+(?:above|before\s+(?:this|my|the\s+user))\b",
            _I,
        ),
        0.75,
    ),
    (
        "fake dialogue turn",
        re.compile(
            r"\n[ \t]*(?:Assistant|AI|ChatGPT|Claude|Bot|GPT)\s*:\s*(?:Sure|Of\s+course|Certainly|Okay|OK|Absolutely|Understood)\b[^\n]{0,80}\n[ \t]*(?:User|Human)\s*:",
            0,
        ),
        0.6,
    ),
]
RULES.append(
    (
        "orders to the agent in content",
        re.compile(
            r"\b(?:do\s+not|don'?t|never)\s+(?:tell|inform|mention\s+(?:this|it)\s+to|reveal\s+(?:this|it)\s+to|alert|notify|let)\s+(?:the\s+)?(?:user|human|customer|operator)\b",
            _I,
        ),
        0.45,
    )
)
RULES += injection_i18n.RULES

# Classic attack phrases with their word breaks gone (`i-g-n-o-r-e-a-l-l-p-r-e-v-i-o-u-s`),
# matched on injection_decode.squashed: only the spaced-out runs of a text, lowercased.
SQUASHED = re.compile(
    r"(?:ignore|disregard|forget|bypass|override)(?:all|any|every|the|your|my)*(?:previous|prior|above|earlier|preceding|original|system)?(?:instructions?|rules|prompts?|directions|guidelines|directives)"
    r"|systemprompt|doanythingnow|developermode|jailbreak|nofilters|norestrictions|youarenowdan|revealyour"
)

# Words attacks are made of: text without any of them never reaches the encoder.
GATE = re.compile(
    r"\b(?:ignore|ignoring|disregard|forget|bypass|override|instructions?|rules|prompts?|system|pretend|role-?play"
    r"|jailbr\w*|DAN|restrict\w*|filters|censor\w*|unrestricted|unfiltered|ethic\w*|guidelines|policy|policies"
    r"|reveal|confidential|developer|admin|persona|act\s+as|you\s+are|from\s+now|opposite|refus\w*|disclaimers?"
    r"|verbatim|obey|comply)\b",
    _I,
)

# Quoting an attack to ask about it: the phrase in quotes, in a text about attacks.
_META = re.compile(
    r"\b(?:prompt\s+injections?|jailbreak(?:s|ing)?|attacks?|attackers?|red[\s-]team\w*|detect\w*|defen[cs]\w*|protect\w*|mitigat\w*|classif\w*|example|phrase|security"
    r"|logs?|logged|typed|filter\w*|malicious|dangerous|suspicious|effective)\b",
    _I,
)
_QUOTES = "\"'“”‘’`«»"
_QUOTE_DISCOUNT = 0.4

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_MAX_DECODED = 8  # payloads decoded per text
_DECODED_FLOOR = 0.6
# Stems a decoded attack almost always carries; a reading without any is not scored.
_DECODED_GATE = re.compile(
    r"ignor|disregard|forget|instruc|prompt|system|rules|reveal|overrid|bypass|jailbr|pretend"
    r"|developer|admin|anything|restrict|filter|password|secret|vergiss|anweis|oubli|consign"
    r"|olvid|dimentic|istruz|esque|regras|regole|reglas|r[eè]gles|negeer|忽略|指令",
    _I,
)


def heuristic_score(text: str, depth: int = 0) -> tuple[float, str]:
    """The strongest rule's weight (0 when none fires) and its name."""
    best, reason = 0.0, ""
    meta = None
    for name, regex, weight in RULES:
        m = regex.search(text)
        if m is None or weight <= best:
            continue
        if meta is None:
            meta = bool(_META.search(text))
        if meta and _quoted(text, m.start(), m.end()):
            weight *= _QUOTE_DISCOUNT
            if weight <= best:
                continue
        best, reason = weight, name
    if depth == 0 and best < 0.9:
        decoded, why = _encoded_payload(text)
        if decoded > best:
            best, reason = decoded, why
        for variant, how in injection_decode.variants(text):
            if best >= 0.9:
                break
            if not _DECODED_GATE.search(variant):
                continue  # most readings of ordinary text are noise: one cheap search
            score, _ = heuristic_score(variant, depth=1)
            # A lone weak phrase in a reversed or ROT13 reading is likely chance.
            if score > best and score >= _DECODED_FLOOR:
                best, reason = score, how
        if best < 0.9 and SQUASHED.search(injection_decode.squashed(text)):
            best, reason = 0.9, "obfuscated (spaced-out letters)"
    return best, reason


_QUOTED = re.compile(
    r'"[^"\n]{1,300}"|“[^”\n]{1,300}”|‘[^’\n]{1,300}’|(?<!\w)\'[^\'\n]{3,300}\'(?!\w)'
)


def unquoted(text: str) -> str:
    """`text` with quoted phrases replaced when it talks about attacks: what the encoder
    should judge is the question, not the attack it quotes."""
    if not _META.search(text):
        return text
    return _QUOTED.sub("that phrase", text)


def _quoted(text: str, start: int, end: int) -> bool:
    """Whether the match sits between quotes within its sentence."""
    before = text[max(0, start - 200) : start]
    after = text[end : end + 200]
    cut = max(before.rfind(". "), before.rfind("\n"))
    before = before[cut + 1 :]
    opened = sum(before.count(q) for q in _QUOTES) % 2 == 1
    closes = any(q in after for q in _QUOTES)
    return opened and closes


def _encoded_payload(text: str) -> tuple[float, str]:
    """Base64 runs decoded and scored by the rules; an attack hidden in one scores as if
    plain (it was hidden on purpose)."""
    if len(text) < 24:
        return 0.0, ""
    best = 0.0
    for i, m in enumerate(_BASE64.finditer(text)):
        if i >= _MAX_DECODED:
            break
        run = m.group()
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=False)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if not decoded.isprintable() and not all(
            ch.isprintable() or ch.isspace() for ch in decoded
        ):
            continue
        score, _ = heuristic_score(decoded, depth=1)
        best = max(best, score)
    return (best, "encoded payload") if best else (0.0, "")
