"""Plano's data plane: config model, proxy server, routing and telemetry."""

__version__ = "0.1.0"
