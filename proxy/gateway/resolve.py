"""From what a client asked for to the ordered list of models to try."""

from __future__ import annotations

from proxy.config.model import Config
from proxy.config.model_index import Resolution
from proxy.config.redact import mask_key_like

# Upstream Plano's header for choosing a provider regardless of the body's model.
PROVIDER_HINT_HEADER = "x-arch-llm-provider-hint"


class UnknownModel(Exception):
    def __init__(self, model: str):
        model = mask_key_like(model)  # a client's key sent as the model is not echoed
        # Upstream's exact wording, which clients may match on.
        super().__init__(f"Model '{model}' not found in configured providers")
        self.model = model


# Model names that ask Plano to choose: the router when routes apply, else the default.
AUTO_MODELS = frozenset({"", "none", "auto", "plano/auto"})


def is_unpinned(config: Config, requested: str | None) -> bool:
    """Whether the router may choose: no model named, `none`/`auto`, or the default model."""
    if not requested or requested.lower() in AUTO_MODELS:
        return True
    default = config.default_provider
    if default is None:
        return False
    return requested in (default.model, default.name, default.model_id)


def candidates(config: Config, requested: str | None) -> list[Resolution]:
    """The primary model, then its alias fallbacks; the default model when none is named."""
    index = config.models
    if not requested:
        default = config.default_provider
        if default is None:
            raise UnknownModel("")
        return [Resolution(default, default.model_id)]
    primary = index.resolve(requested)
    if primary is None or primary.model_id == "*":
        raise UnknownModel(requested)
    chain = [primary]
    for fallback in config.alias_fallbacks.get(requested, ()):
        resolved = index.resolve(fallback, follow_aliases=False)
        if resolved is not None and resolved.model not in {c.model for c in chain}:
            chain.append(resolved)
    return chain
