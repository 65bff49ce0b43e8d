"""Whether the listeners' ports are free, checked before starting processes on them."""

from __future__ import annotations

import socket

from proxy.config.model import Config, ListenerType


def cannot_listen(config: Config) -> str | None:
    """Why a listener cannot bind, checked before spawning.

    Without it, another server already on the port would answer /healthz and pass for
    ours; and with `--workers`, whose processes bind with SO_REUSEPORT, another such
    server of the same user would silently share the port with them. The probe binds
    without SO_REUSEPORT, which fails while any socket holds the port.
    """
    for listener in config.listeners:
        if listener.type is ListenerType.PROMPT:
            continue
        where = f"{listener.address}:{listener.port}"
        try:
            infos = socket.getaddrinfo(
                listener.address, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except OSError as exc:
            return f"cannot listen on {where}: {exc.strerror or exc}"
        for family, kind, proto, _, address in infos:
            try:
                with socket.socket(family, kind, proto) as sock:
                    # As aiohttp binds (reuse_address=True): TIME_WAIT leftovers do not count.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(address)
            except OSError as exc:
                return f"cannot listen on {where}: {exc.strerror or exc}"
    return None
