"""TLS on the client port: ZooKeeper's ``ssl.*`` keys turned into an ``ssl.SSLContext``.

``secureClientPort`` opens a second listener that speaks the same protocol over TLS
(``clientPort`` and ``secureClientPort`` side by side, as ZooKeeper allows). The keys are
ZooKeeper's (``ssl.keyStore.*``, ``ssl.trustStore.*``, ``ssl.protocol``,
``ssl.enabledProtocols``, ``ssl.ciphersuites``, ``ssl.clientAuth``,
``ssl.hostnameVerification``, ``ssl.handshakeDetectionTimeoutMillis``,
``client.certReload``, ``ssl.authProvider``); written in zoo.cfg with or without the
``zookeeper.`` prefix. Key and trust stores are PEM or PKCS12 files (JKS and BCFKS are
refused with a config error saying how to convert them).

After the handshake, the client certificate (``ssl.clientAuth`` want/need) is handed to
the auth provider named by ``ssl.authProvider`` (default ``x509``), which turns it into
ids on the connection, exactly when ZooKeeper's NettyServerCnxnFactory does.

Certificate reload (``client.certReload=true``): the key and trust store files are polled;
when one changes, a new context is built and every later handshake uses it (the
listener's context switches each new connection to the current one in its SNI callback,
which OpenSSL calls for every ClientHello). A store that fails to load keeps the
previous context and logs why.
"""

from __future__ import annotations

import asyncio
import logging

from kernel.api import Id, ReloadingContext, TlsSettings
from plugins.transport_jute import connection as _conn

log = logging.getLogger(__name__)

__all__ = ["ReloadingContext", "TlsJuteConnection", "TlsListener", "TlsSettings"]


class TlsJuteConnection(_conn.JuteConnection):
    """A client connection on the secure port: the plain protocol after the handshake,
    plus the client certificate handed to the TLS auth provider (x509 ids)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.state == _conn._CLOSED:
            return
        sslobj = transport.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if not der:
            return  # clientAuth none, or want without a certificate: no x509 id
        tls = self.server.tls
        assert tls is not None
        provider = self.kernel.acl.providers.get(tls.settings.auth_provider)
        authenticate = getattr(provider, "authenticate_certificate", None)
        if authenticate is None:
            self._fail(f"X509 auth provider not found: {tls.settings.auth_provider}")
            return
        try:
            ids: list[Id] = authenticate(self.remote_address, der)
        except Exception as e:  # AuthFailed or a certificate the provider cannot read
            self.kernel.stats.auth_failed += 1
            self._fail(f"client certificate authentication failed: {e}")
            return
        for i in ids:
            if i not in self.ids:
                self.ids.append(i)


class TlsListener:
    """What the Jute transport needs for its secure port."""

    def __init__(self, host: str, port: int, settings: TlsSettings) -> None:
        self.host = host
        self.port = port
        self.settings = settings
        self.contexts = ReloadingContext(settings)
