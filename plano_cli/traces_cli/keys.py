"""The --where keys. Imported by the command module at start-up, so this imports nothing."""

# The store's own filter keys (proxy.telemetry.store_query.FILTER_KEYS), repeated so that
# the CLI's start-up does not import the store; a test keeps the two in step.
STORE_KEYS = (
    "api",
    "listener",
    "model",
    "outcome",
    "provider",
    "route",
    "session",
    "status",
    "agent",
    "filter",
    "decision",
)
# proxy.telemetry.store_query.OUTCOMES and DECISIONS, likewise.
OUTCOMES = ("ok", "error", "stream_error", "client_disconnect", "shutdown")
DECISIONS = ("pass", "modify", "block", "error")
# Keys the store takes as separate arguments of list_traces and stats.
EXTRA_KEYS = ("min_latency_ms", "has_signals", "text")
WHERE_KEYS = STORE_KEYS + EXTRA_KEYS
# A summary row has no messages, so `tail` cannot search them, nor the agents and filters
# a call ran (they are its spans).
SPAN_KEYS = ("agent", "filter", "decision")
TAIL_KEYS = tuple(k for k in WHERE_KEYS if k not in ("text", *SPAN_KEYS))
