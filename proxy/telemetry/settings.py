"""What the telemetry worker needs to know, cut from the config into one picklable value."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from proxy.config.model import Config
from proxy.pricing import Price

DEFAULT_ADMIN_PORT = 9901  # Envoy's admin port, where upstream Plano's admin listens


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    store_enabled: bool = True
    store_path: str | None = None  # None: $PLANO_HOME/traces.db
    retention_days: float = 7.0
    max_traces: int = 100_000
    capture_messages: bool = True
    signals: bool = True
    admin_enabled: bool = True
    admin_address: str = "127.0.0.1"
    admin_port: int | None = None  # None: DEFAULT_ADMIN_PORT, or any free port if it is taken
    otlp_endpoint: str | None = None  # tracing.opentracing_grpc_endpoint
    prices: dict[str, Price] = field(default_factory=dict)
    service_name: str = "plano"
    # Build traces at the lowest CPU priority (the proxy's work cannot wait; this can).
    background: bool = True
    log_level: str = "WARNING"
    # `plano up --workers N`: the worker also accepts record connections from the gateway
    # processes on this Unix socket (with this key), so they share one store and /metrics.
    gateway_socket: str | None = None
    gateway_authkey: bytes | None = field(default=None, repr=False)

    def admin_url(self, port: int | None) -> str | None:
        """Where the admin listener bound at `port` answers (None: it did not bind)."""
        if port is None:
            return None
        address = self.admin_address
        host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
        return f"http://{host}:{port}"

    @property
    def ships_bodies(self) -> bool:
        """Whether sampled requests must send their bodies: to store them, or to score them."""
        return self.signals or (self.store_enabled and self.capture_messages)


def worker_settings(config: Config, **overrides: object) -> WorkerSettings:
    store = config.tracing.store
    settings = WorkerSettings(
        store_enabled=store.enabled,
        store_path=store.path,
        retention_days=store.retention_days,
        max_traces=store.max_traces,
        capture_messages=store.capture_messages,
        signals=not config.overrides.disable_signals,
        admin_enabled=config.admin.enabled,
        admin_address=config.admin.address,
        admin_port=config.admin.port,
        otlp_endpoint=config.tracing.otlp_endpoint,
        prices=dict(config.pricing),
    )
    return replace(settings, **overrides) if overrides else settings
