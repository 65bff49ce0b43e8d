"""Telemetry kept off the request path: logs now; spans, metrics and signals next."""
