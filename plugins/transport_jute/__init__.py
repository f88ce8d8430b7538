"""The stock ZooKeeper client protocol (Jute over TCP) and the four-letter words.

Enabled by default (``kernel.transports`` includes ``jute``); listens on
``clientPortAddress:clientPort`` and, with ``secureClientPort``, over TLS on
``secureClientPortAddress:secureClientPort`` (the ``ssl.*`` keys, see ``tls.py``).
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
    from plugins.transport_jute.tls import TlsListener, TlsSettings

    tls = None
    if config.secure_client_port is not None:
        tls = TlsListener(config.secure_client_port_address or config.client_port_address,
                          config.secure_client_port, TlsSettings.from_config(config))
    # A zoo.cfg with secureClientPort and no clientPort serves TLS only (as ZooKeeper).
    plain = not (tls is not None and config.get("clientPort") in (None, ""))
    return [JuteTransport(kernel, config.client_port_address,
                          config.client_port if plain else None, tls)]
