"""Resolve what a client or a config calls a model to one configured provider entry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.config.model import ModelProvider


@dataclass(frozen=True, slots=True)
class Resolution:
    provider: ModelProvider
    model_id: str  # concrete: a wildcard entry gets the id the caller asked for

    @property
    def model(self) -> str:
        return f"{self.provider.provider}/{self.model_id}"


class ModelIndex:
    """Lookup tables over model_providers, in file order (first match wins)."""

    def __init__(self, providers: Iterable[ModelProvider], aliases: Mapping[str, str] = {}):
        self.providers = tuple(providers)
        self.aliases = dict(aliases)
        self._by_name: dict[str, ModelProvider] = {}
        self._by_model: dict[str, ModelProvider] = {}
        self._by_id: dict[str, list[ModelProvider]] = {}
        self._wildcards: dict[str, ModelProvider] = {}
        for entry in self.providers:
            self._by_name.setdefault(entry.name, entry)
            if entry.is_wildcard:
                self._wildcards.setdefault(entry.provider, entry)
                continue
            self._by_model.setdefault(entry.model, entry)
            self._by_id.setdefault(entry.model_id, []).append(entry)

    def resolve(self, ref: str, *, follow_aliases: bool = True) -> Resolution | None:
        """A provider name, provider/model_id, bare model id, wildcard match, or alias."""
        if follow_aliases and ref in self.aliases:
            return self.resolve(self.aliases[ref], follow_aliases=False)
        entry = self._by_name.get(ref) or self._by_model.get(ref)
        if entry is not None:
            return Resolution(entry, entry.model_id)
        same_id = self._by_id.get(ref)
        if same_id:
            return Resolution(same_id[0], same_id[0].model_id)
        prefix, slash, model_id = ref.partition("/")
        if slash and model_id and prefix in self._wildcards:
            return Resolution(self._wildcards[prefix], model_id)
        return None

    def names(self) -> list[str]:
        """Everything a reference may name, for did-you-mean hints."""
        seen = dict.fromkeys(
            [*self._by_name, *self._by_model, *self._by_id, *(f"{p}/*" for p in self._wildcards)]
        )
        return list(seen)
