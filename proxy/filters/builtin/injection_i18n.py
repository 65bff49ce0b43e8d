# ruff: noqa: E501 -- regex tables: one language's alternatives per line reads better than split strings
r"""The injection heuristics for attacks not written in English.

The encoder (all-MiniLM-L6-v2) is English-only, so for German, French, Spanish, Italian,
Portuguese, Dutch, Russian, Chinese and Japanese the rules are all there is. Each
language gets the families that carry most attacks: an order to ignore or forget earlier
instructions, a request for the system prompt, and the "you are now unrestricted"
persona. Word gaps are bounded (`gap`), so every pattern is linear in its input. Weights
were set on the development set (tests/data/injection_dev.jsonl).
"""

from __future__ import annotations

import re

_I = re.IGNORECASE


def gap(words: int) -> str:
    """Up to `words` words between two phrases (injection_rules uses it too)."""
    return rf"(?:\W+\w+){{0,{words}}}?\W+"


# Verbs that drop earlier instructions.
_DROP = (
    r"(?:ignorier\w*|vergiss|vergessen|missacht\w*|übergeh\w*|überspring\w*|verwirf|setze?\s+\w+\s+außer\s+kraft"  # de
    r"|ignor(?:e|ez|er|ant)|oubli(?:e|ez|er)|n[e']\s*tiens?\s+(?:pas\s+)?compte|ne\s+tenez\s+pas\s+compte|fais\s+abstraction|faites\s+abstraction|passe\s+outre|contourne\w*"  # fr
    r"|ignora\w*|olvid\w*|omit\w*|haz\s+caso\s+omiso|hagan?\s+caso\s+omiso|descart\w*|pasa\s+por\s+alto|salt(?:a|ate|are)"  # es / it / pt
    r"|dimentic\w*|trascur\w*|non\s+considerare|lascia\s+perdere"  # it
    r"|esque[çc]\w*|desconsider\w*|despreze?|n[ãa]o\s+sig\w*"  # pt
    r"|negeer\w*|vergeet"  # nl
    r"|игнорир\w*|забудь\w*|проигнорир\w*|не\s+обращай\w*\s+внимани\w*)"  # ru
)
# What is dropped: instructions, rules, the prompt.
_ORDERS = (
    r"(?:anweisung\w*|instruktion\w*|regeln|befehle?|vorgaben|richtlinien|systemprompts?|vorschriften"  # de
    r"|instructions?|consignes?|r[èe]gles?|directives?|ordres|indications"  # fr
    r"|instrucci[oó]n\w*|reglas|indicaciones|directrices|[oó]rdenes|normas|pautas"  # es
    r"|istruzion\w*|regole|direttive|indicazioni|ordini"  # it
    r"|instru[çc][õoã]\w*|regras|diretrizes|ordens|orienta[çc][õoã]\w*"  # pt
    r"|instructies|regels|opdrachten"  # nl
    r"|инструкци\w*|указани\w*|правил\w*|команд\w*)"  # ru
)
# Which instructions: the earlier ones, all of them.
_EARLIER = (
    r"(?:vorherig\w*|bisherig\w*|obig\w*|früher\w*|vorige\w*|vorangegangen\w*|alle[ns]?|deine[n]?|ihre[n]?|ursprünglich\w*|ganzen?"  # de
    r"|pr[ée]c[ée]dent\w*|ant[ée]rieur\w*|ci-dessus|toutes|tous|tes|vos|initiales?|originales?"  # fr
    r"|anterior\w*|previ[oa]s|todas?|todos|tus|sus|originales|iniciales|de\s+arriba"  # es
    r"|precedent\w*|tutte|tutti|le\s+tue|sopra|iniziali|originali"  # it
    r"|anteriores|pr[ée]vias|todas|suas|tuas|acima|originais"  # pt
    r"|vorige|eerdere|alle"  # nl
    r"|предыдущ\w*|вс[еёя]\w*|прежн\w*|свои|твои)"  # ru
)
_EVERYTHING_BEFORE = (
    r"(?:vergiss|vergessen\s+sie|ignoriere?|ignorieren\s+sie)\s+alles(?:,)?\s+(?:was|bisher|vorher|zuvor|davor|oben)"
    r"|oubli(?:e|ez)\s+tout\s+(?:ce\s+qu|ce\s+qui|avant)|ignor(?:e|ez)\s+tout\s+(?:ce\s+qu|ce\s+qui|avant)"
    r"|olvida\w*\s+todo\s+(?:lo\s+(?:que|anterior)|antes)|ignora\w*\s+todo\s+(?:lo\s+(?:que|anterior)|antes)"
    r"|dimentica\w*\s+tutto\s+(?:quello|ci[òo]\s+che|prima)|ignora\w*\s+tutto\s+(?:quello|ci[òo]\s+che|prima)"
    r"|esque[çc]a\w*\s+tudo\s+(?:o\s+que|antes|que)|ignor[ea]\w*\s+tudo\s+(?:o\s+que|antes|que)"
    r"|vergeet\s+alles|забудь\w*\s+вс[её]|игнорир\w*\s+вс[её]"
)
_SHOW = (
    r"(?:zeig\w*|gib\w*|nenn\w*|verrat\w*|wiederhol\w*|ausgeben|offenleg\w*|enthüll\w*|drucke?|schreib\w*|teile?|wie\s+lautet|was\s+(?:ist|sind|steht\s+in)"  # de
    r"|r[ée]v[èe]le\w*|montre\w*|affiche\w*|donne\w*|r[ée]p[èe]te\w*|imprime\w*|divulgue\w*|[ée]cri[st]\w*|quel(?:le)?s?\s+(?:est|sont)"  # fr
    r"|revela\w*|muestra\w*|mu[ée]strame|dime|dame|repite\w*|imprime\w*|escribe\w*|comparte\w*|cu[áa]l(?:es)?\s+(?:es|son)"  # es
    r"|rivela\w*|mostra\w*|dimmi|ripeti\w*|stampa\w*|scrivi\w*|condividi\w*|qual\s+[èe]|quali\s+sono"  # it
    r"|revele\w*|mostre\w*|me\s+(?:diga|mostre|d[êe])|diga\w*|repita\w*|imprima\w*|escreva\w*|compartilh\w*|qual\s+[ée]|quais\s+s[ãa]o"  # pt
    r"|toon|laat\s+\w+\s+zien|herhaal|geef"  # nl
    r"|покажи\w*|раскрой\w*|выведи\w*|повтори\w*|напиши\w*|какой|каков\w*)"  # ru
)
_SECRET = (
    r"(?:(?:deine[nm]?|ihre[nm]?|den|dein)\s+(?:\w+\s+)?(?:system-?prompts?|systemanweisung\w*)|systemanweisung\w*|system-?nachricht\w*|versteckten\s+anweisungen|ursprünglichen\s+anweisungen|(?:deine|ihre)\s+(?:anweisungen|instruktionen|regeln)"  # de
    r"|prompt\s+(?:syst[èe]me|initial|cach[ée])|invite\s+syst[èe]me|instructions?\s+(?:syst[èe]me|initiales|cach[ée]es)|(?:tes|vos)\s+instructions"  # fr
    r"|prompt\s+(?:del\s+sistema|de\s+sistema|inicial|oculto)|instrucciones\s+(?:del\s+sistema|ocultas|iniciales|originales)|tus\s+instrucciones"  # es
    r"|prompt\s+(?:di\s+sistema|del\s+sistema|iniziale|nascosto)|istruzioni\s+(?:di\s+sistema|nascoste|iniziali|originali)|(?:le\s+)?tue\s+istruzioni"  # it
    r"|prompt\s+(?:do\s+sistema|de\s+sistema|inicial|oculto)|instru[çc][õo]es\s+(?:do\s+sistema|ocultas|iniciais|originais)|(?:suas|tuas)\s+instru[çc][õo]es"  # pt
    r"|systeemprompt|je\s+instructies"  # nl
    r"|системн\w*\s+(?:промпт|подсказк|инструкци)\w*|свои\s+инструкции|твои\s+инструкции)"  # ru
)
_PERSONA = (
    r"\b(?:du\s+bist\s+(?:jetzt|nun|ab\s+sofort)|sie\s+sind\s+(?:jetzt|nun|ab\s+sofort))\b"
    + gap(4)
    + r"(?:ohne|keine|frei|uneingeschränkt|ungefiltert|unzensiert|DAN)"
    r"|\b(?:tu\s+es|vous\s+[êe]tes)\s+(?:maintenant|d[ée]sormais|[àa]\s+pr[ée]sent)\b"
    + gap(4)
    + r"(?:sans|libre|aucune|non\s+censur|non\s+filtr|DAN)"
    r"|\b(?:ahora\s+eres|ahora\s+(?:usted\s+)?es|a\s+partir\s+de\s+ahora\s+eres)\b"
    + gap(4)
    + r"(?:sin|libre|ninguna|sin\s+censura|DAN)"
    r"|\b(?:ora\s+sei|adesso\s+sei|da\s+ora\s+in\s+poi\s+sei)\b"
    + gap(4)
    + r"(?:senza|libero|nessuna|DAN)"
    r"|\b(?:agora\s+(?:voc[êe]\s+)?[ée]|a\s+partir\s+de\s+agora\s+(?:voc[êe]\s+)?[ée])\b"
    + gap(4)
    + r"(?:sem|livre|nenhuma|DAN)"
    r"|\b(?:entwicklermodus|mode\s+d[ée]veloppeur|modo\s+(?:de\s+)?desarrollador|modalit[àa]\s+sviluppatore|modo\s+(?:de\s+)?desenvolvedor|режим\s+разработчика)\b"
)
_NO_LIMITS = (
    r"\b(?:ohne\s+(?:jegliche\s+|alle\s+|irgendwelche\s+)?(?:einschränkungen|beschränkungen|filter|zensur|regeln|ethische)"
    r"|sans\s+(?:aucune\s+)?(?:restriction|limite|filtre|censure|r[èe]gle)s?"
    r"|sin\s+(?:ninguna\s+)?(?:restricci[oó]n|restricciones|l[ií]mites?|filtros?|censura|reglas)"
    r"|senza\s+(?:alcuna\s+|nessuna\s+)?(?:restrizion[ei]|limit[ei]|filtri|censura|regole)"
    r"|sem\s+(?:nenhuma\s+|qualquer\s+)?(?:restri[çc][ãa]o|restri[çc][õo]es|limites|filtros?|censura|regras)"
    r"|без\s+(?:каких-либо\s+|всяких\s+)?(?:ограничений|фильтров|цензуры|правил))\b"
)
_CJK_DROP = r"(?:忽略|无视|無視|忘记|忘掉|不要理会|放弃)"
_CJK_ORDERS = r"(?:指令|指示|说明|規則|规则|提示|命令|設定|设定)"

RULES: list[tuple[str, re.Pattern[str], float]] = [
    (
        "instruction override (non-English)",
        re.compile(
            rf"\b{_DROP}\b{gap(3)}(?:{_EARLIER}\b{gap(2)}{_ORDERS}|{_ORDERS}\b{gap(2)}{_EARLIER})\b",
            _I,
        ),
        0.9,
    ),
    ("instruction override (non-English)", re.compile(rf"\b(?:{_EVERYTHING_BEFORE})", _I), 0.9),
    (
        "instruction override (non-English)",
        re.compile(
            rf"{_CJK_DROP}.{{0,12}}{_CJK_ORDERS}|(?:以前|前の|上記|これまでの).{{0,8}}(?:指示|命令|ルール).{{0,4}}(?:無視|忘れ)",
            _I,
        ),
        0.9,
    ),
    (
        "system prompt exfiltration (non-English)",
        re.compile(rf"\b{_SHOW}\b{gap(4)}{_SECRET}\b", _I),
        0.85,
    ),
    (
        "system prompt exfiltration (non-English)",
        re.compile(r"(?:系统提示|系統提示|システムプロンプト|初始指令)", _I),
        0.6,
    ),
    ("role-play jailbreak (non-English)", re.compile(_PERSONA, _I), 0.6),
    ("role-play jailbreak (non-English)", re.compile(_NO_LIMITS, _I), 0.45),
]
