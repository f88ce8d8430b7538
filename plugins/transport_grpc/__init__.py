"""zkernel's gRPC API (package ``zkernel.v1``), side by side with the Jute protocol.

Enabled when ``kernel.transports`` lists ``grpc``. zoo.cfg keys:

* ``grpcPort`` (default 2281) and ``grpcPortAddress`` (default ``clientPortAddress``):
  where it listens;
* ``grpc.maxSessionEvents`` (default 1000): watch events a session's log retains for
  its event streams and for resumption (see docs/grpc.md);
* ``jute.maxbuffer`` also bounds the size of a gRPC request message.

The .proto is ``proto/zkernel/v1/zkernel.proto``; the Python stubs in ``v1/`` are
generated from it by ``python -m plugins.transport_grpc.regen``.
"""

from __future__ import annotations

from typing import Any

from kernel.api import ConfigError, ServerConfig, hookimpl


def _int(config: ServerConfig, key: str, default: int) -> int:
    raw = config.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None


@hookimpl
def zk_transports(kernel: Any, config: ServerConfig) -> list[Any]:
    """The gRPC listener when ``grpc`` is among ``kernel.transports``."""
    if "grpc" not in config.transports:
        return []
    from plugins.transport_grpc.server import DEFAULT_MAX_EVENTS, DEFAULT_PORT, GrpcTransport

    port = _int(config, "grpcPort", DEFAULT_PORT)
    if not 0 <= port <= 65535:
        raise ConfigError(f"grpcPort out of range: {port}")
    max_events = _int(config, "grpc.maxSessionEvents", DEFAULT_MAX_EVENTS)
    if max_events <= 0:
        raise ConfigError("grpc.maxSessionEvents must be positive")
    host = config.get("grpcPortAddress") or config.client_port_address
    tls = None
    if (config.get("grpc.ssl") or "false").strip().lower() == "true":
        from kernel.api import TlsSettings, pem_material

        tls = TlsSettings.from_config(config, "ssl.")
        pem_material(tls)  # unreadable stores are a config error now, not at serve
    return [GrpcTransport(kernel, host, port, max_events, tls)]
