"""Filters applied to requests and answers: built-in guardrails (and, later, the chain)."""
