"""Rate limits: token budgets per model and selector, in buckets kept locally or in Redis."""
