"""The PII guardrail as a filter: pii.py's detectors applied to a request's message text.

- `redact`: each value becomes its kind, `[EMAIL]`;
- `anonymize`: each value becomes a stable placeholder, `<EMAIL_1>`, and the answer gets
  the originals back (streamed deltas included, pii.StreamRestorer);
- `block`: the request is refused (400), the message names the kinds found, never a value.

Every role's text is scanned, the system prompt included: personal data there reaches the
provider as surely as in a user turn. In output_filters the filter redacts the answer
(any action: an answer already on its way cannot be refused, and there is nothing of the
request to restore).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.filters import texts
from proxy.filters.builtin import pii
from proxy.filters.builtin.base import AnswerTransform
from proxy.filters.builtin.common import RAN, blocked, modified, unknown_options
from proxy.filters.builtin.holdback import HoldbackRewriter
from proxy.filters.verdict import Verdict

ACTIONS = ("redact", "anonymize", "block")
ENTITIES = {kind.lower(): kind for kind in pii.KINDS}  # the config's names -> pii's kinds
OPTIONS = ("action", "entities")
# Output redaction holds back this much of a stream: above the longest value usually met
# (an IBAN is 42 characters with spaces, an API key 40-100), so a value cut across deltas
# is still caught. A longer token (a JWT) cut by the stream is caught only in part.
OUTPUT_HOLD = 160
_ANONYMIZER = "anonymizer"


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options("pii", options, OPTIONS)
    action = options.get("action", "redact")
    if action not in ACTIONS:
        problems.append(f"option 'action' must be one of {', '.join(ACTIONS)}, not {action!r}")
    entities = options.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            problems.append("option 'entities' must be a non-empty list of kinds")
        else:
            problems += [
                f"option 'entities': {name!r} is not one of {', '.join(ENTITIES)}"
                for name in entities
                if not isinstance(name, str) or name.lower() not in ENTITIES
            ]
    return problems


class PiiFilter:
    kind = "pii"
    inline_bytes = 64 * 1024  # ~5.6 ms at 64 KiB

    def __init__(self, action: str = "redact", entities: list[str] | None = None) -> None:
        self.action = action
        self.kinds = (
            frozenset(ENTITIES[e.lower()] for e in entities) if entities else frozenset(pii.KINDS)
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PiiFilter:
        return cls(options.get("action", "redact"), options.get("entities"))

    def warm(self) -> None:
        pass  # the detectors are regexes, compiled at import

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        state[RAN] = True
        if self.action == "block":
            found = self.kinds_in(body, api)
            if not found:
                return modified(body, body)
            return blocked(
                "The request contains personal data or credentials ("
                + ", ".join(kind.lower() for kind in found)
                + "); remove them and try again."
            )
        if self.action == "anonymize":
            anonymizer = state.get(_ANONYMIZER)
            if anonymizer is None:  # one per request, shared by its chains' calls
                anonymizer = state[_ANONYMIZER] = pii.Anonymizer(self.kinds)
            return modified(
                body, texts.rewrite(body, api, lambda slot: anonymizer.anonymize(slot.text))
            )
        return modified(
            body, texts.rewrite(body, api, lambda slot: pii.redact(slot.text, self.kinds))
        )

    def kinds_in(self, body: Any, api: str) -> list[str]:
        """The kinds found in the body's text, in pii.KINDS order."""
        found = {m.kind for slot in texts.slots(body, api) for m in pii.find(slot.text, self.kinds)}
        return [kind for kind in pii.KINDS if kind in found]

    def answer(self, state: dict) -> AnswerTransform | None:
        if not state.get(RAN):
            return self.output()
        anonymizer = state.get(_ANONYMIZER)
        if anonymizer is not None and anonymizer.has_placeholders():
            return anonymizer.stream_restorer()
        return None

    def output(self) -> AnswerTransform:
        """Redaction of one answer, for the filter listed in output_filters."""
        kinds = self.kinds
        return HoldbackRewriter(
            lambda text: ((m.start, m.end, f"[{m.kind}]") for m in pii.find(text, kinds)),
            OUTPUT_HOLD,
        )
