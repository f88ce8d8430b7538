"""The stock ZooKeeper client protocol (Jute over TCP) and the four-letter words.

Enabled by default (``kernel.transports`` includes ``jute``); listens on
``clientPortAddress:clientPort``.
"""

from __future__ import annotations

from typing import Any

from kernel.api import ServerConfig, hookimpl


@hookimpl
def zk_transports(kernel: Any, config: ServerConfig) -> list[Any]:
    """The Jute listener when ``jute`` is among ``kernel.transports``."""
    if "jute" not in config.transports:
        return []
    from plugins.transport_jute.server import JuteTransport

    return [JuteTransport(kernel, config.client_port_address, config.client_port)]
