"""Stand-in upstream providers (OpenAI, Anthropic) for the proxy's tests; never product code."""
