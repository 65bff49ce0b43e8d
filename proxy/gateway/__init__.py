"""The LLM request path: resolve the model, call upstream with retries and failover."""
