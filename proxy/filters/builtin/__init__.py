"""Guardrails that run in-process, with no service to call."""
