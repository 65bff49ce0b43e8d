"""Fix suggestions: renamed keys, keys that moved, and did-you-mean."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.config.problems import Path

# Keys users write that Plano calls something else. Upstream's docs drifted from its
# schema, so configs copied from them carry these.
RENAMED_KEYS: dict[str, tuple[str, str]] = {
    "filter_chain": ("input_filters", "upstream renamed this key"),
    "listener": ("listeners", "the key is plural"),
    "llm_provider": ("model_providers", "providers are listed under 'model_providers'"),
    "model_provider": ("model_providers", "the key is plural"),
    "providers": ("model_providers", "providers are listed under 'model_providers'"),
    "aliases": ("model_aliases", "aliases are listed under 'model_aliases'"),
    "routes": ("routing_preferences", "routes are listed under 'routing_preferences'"),
    "routing_preference": ("routing_preferences", "the key is plural"),
    "prompt_target": ("prompt_targets", "the key is plural"),
    "rate_limits": ("ratelimits", "the key has no underscore"),
    "api_key": ("access_key", "provider keys go in 'access_key'"),
    "apikey": ("access_key", "provider keys go in 'access_key'"),
    "key": ("access_key", "provider keys go in 'access_key'"),
    "url": ("base_url", "a provider's address goes in 'base_url'"),
    "endpoint_url": ("base_url", "a provider's address goes in 'base_url'"),
    "base_url": ("url", "an agent's or filter's address goes in 'url'"),
    "interface": ("provider_interface", "the full key name is needed"),
    "output_filter": ("output_filters", "the key is plural"),
    "input_filter": ("input_filters", "the key is plural"),
    "filters": ("input_filters", "a listener's filters go in 'input_filters' or 'output_filters'"),
    "sampling": ("random_sampling", "the full key name is needed"),
    "default_model": ("default", "mark the default provider entry with 'default: true'"),
}

# Keys that belong one level down, by where they were found ("[]" stands for any index).
MOVED_KEYS: dict[tuple[str, str], str] = {
    (
        "prompt_targets[]",
        "path",
    ): "'path' belongs under 'endpoint': endpoint: {name: ..., path: ...}",
    ("prompt_targets[]", "http_method"): "'http_method' belongs under 'endpoint'",
    ("model_providers[]", "models"): "one entry per model: write `model: provider/model_id`",
}


def shape_of(path: Path) -> str:
    """A path with indexes blanked: listeners[]agents[] style keys for the tables above."""
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out.replace("llm_providers", "model_providers")


def unknown_key_hint(key: str, allowed: Iterable[str], parent: Path) -> tuple[str, str | None]:
    """(hint, the allowed key it points to if any) for a key the schema does not allow."""
    allowed = list(allowed)
    moved = MOVED_KEYS.get((shape_of(parent), key))
    if moved:
        return moved + ".", None
    renamed = RENAMED_KEYS.get(key)
    if renamed and renamed[0] in allowed:
        target, why = renamed
        return f"{why}: rename it to '{target}'.", target
    close = did_you_mean(key, allowed)
    if close:
        return f"did you mean '{close}'?", close
    if allowed:
        return "allowed keys here: " + ", ".join(sorted(allowed)) + ".", None
    return "this mapping takes no keys.", None


def did_you_mean(word: str, options: Iterable[str], cutoff: float = 0.72) -> str | None:
    import difflib  # ~10 ms of start-up, paid only when there is a problem to explain

    options = [o for o in options if isinstance(o, str)]
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return match[0] if match else None
