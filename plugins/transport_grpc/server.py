"""The gRPC listener: a grpc.aio server on the kernel's event loop.

grpc.aio runs on whatever asyncio loop is current when the server is created, uvloop
included, so the servicers call the kernel directly from the loop thread, as the Jute
transport does. The server also offers grpc.health.v1 and server reflection.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

import anyio
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kernel.api import Id, Kernel, TlsSettings, pem_material
from plugins.transport_grpc.connection import GrpcConnection
from plugins.transport_grpc.errors import AUTH_FAILED, BAD_ARGUMENTS, SESSION_EXPIRED, CallError
from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from plugins.transport_grpc.v1 import zkernel_pb2_grpc as pbg

log = logging.getLogger(__name__)

SESSION_KEY = "zk-session"
AUTH_KEY = "zk-auth"
SERVICES = tuple(pb.DESCRIPTOR.services_by_name[n].full_name
                 for n in ("Sessions", "Nodes", "Watches"))
DEFAULT_PORT = 2281
DEFAULT_MAX_EVENTS = 1000


def make_token(session_id: int, password: bytes) -> str:
    """The ``zk-session`` value of a session: ``<id hex>:<password hex>``."""
    return f"{session_id & 0xFFFFFFFFFFFFFFFF:016x}:{password.hex()}"


def parse_token(token: str) -> tuple[int, bytes]:
    """Session id and password of a token; ValueError if malformed."""
    sid_hex, pw_hex = token.strip().split(":", 1)
    sid = int(sid_hex, 16)
    if sid >= 1 << 63:
        sid -= 1 << 64
    return sid, bytes.fromhex(pw_hex)


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The client's IP address (for ``ip`` ACLs), from ``ipv4:1.2.3.4:5`` or
    ``ipv6:[::1]:5``."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        host = rest.rpartition(":")[0]
        return host.strip("[]").replace("%5B", "").replace("%5D", "")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return rest


class GrpcTransport:
    """The gRPC listener and the sessions it currently serves."""

    name = "grpc"

    def __init__(self, kernel: Kernel, host: str, port: int, max_events: int,
                 tls: TlsSettings | None = None) -> None:
        self.kernel = kernel
        # grpc.ssl=true: the port speaks TLS with the client port's ssl.* settings, and
        # a client certificate gives the session an x509 id, as on secureClientPort.
        self.tls = tls
        self.host = host
        self.port = port
        self.max_events = max_events
        self.max_message = kernel.config.jute_maxbuffer
        self.connections: dict[int, GrpcConnection] = {}
        self._by_token: dict[str, GrpcConnection] = {}  # the fast path of attach
        self._attaching: dict[int, asyncio.Future[GrpcConnection | None]] = {}
        self.health: Any = None

    # -- sessions --------------------------------------------------------------------

    def new_connection(self, context: grpc.aio.ServicerContext) -> GrpcConnection:
        """A connection for a new or re-attached session, known to the kernel."""
        conn = GrpcConnection(self, peer_address(context), self.max_events)
        if self.tls is not None:
            for i in self._certificate_ids(context, conn.remote_address):
                if i not in conn.ids:
                    conn.ids.append(i)
        self.kernel.register_connection(conn)
        return conn

    def _certificate_ids(self, context: grpc.aio.ServicerContext,
                         address: str) -> list[Id]:
        """The ids the TLS auth provider (``ssl.authProvider``, x509) gives the
        client's certificate; none without one."""
        assert self.tls is not None
        pems = (context.auth_context() or {}).get("x509_pem_cert") or []
        if not pems:
            return []
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        der = x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)
        provider = self.kernel.acl.providers.get(self.tls.auth_provider)
        authenticate = getattr(provider, "authenticate_certificate", None)
        if authenticate is None:
            raise CallError(AUTH_FAILED, f"TLS auth provider {self.tls.auth_provider} "
                                         f"not available")
        try:
            return list(authenticate(address, der))
        except Exception as e:
            raise CallError(AUTH_FAILED, f"client certificate refused: {e}") from None

    def adopt(self, conn: GrpcConnection) -> None:
        """``conn`` now serves its session (after the handshake)."""
        assert conn.session is not None
        sess = conn.session
        old = self.connections.get(sess.id)
        self.connections[sess.id] = conn
        self._by_token[make_token(sess.id, sess.password)] = conn
        if old is not None and old is not conn:
            old.close()

    def forget(self, conn: GrpcConnection) -> None:
        sess = conn.session
        if sess is not None and self.connections.get(sess.id) is conn:
            del self.connections[sess.id]
            self._by_token.pop(make_token(sess.id, sess.password), None)

    async def attach(self, context: grpc.aio.ServicerContext) -> GrpcConnection:
        """The connection of the session a call names in ``zk-session``; re-attaches a
        session that has none here (after a server restart, an auth failure, or when
        the session was last used over Jute). CallError if there is no such session."""
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == SESSION_KEY:
                token = value
                break
        if token is None:
            raise CallError(BAD_ARGUMENTS, f"no {SESSION_KEY} metadata: call "
                                           "Sessions.Create and send its token")
        conn = self._by_token.get(token)
        if conn is not None and not conn.closed:
            return conn
        try:
            sid, password = parse_token(str(token))
        except ValueError:
            raise CallError(BAD_ARGUMENTS, f"malformed {SESSION_KEY} token") from None
        conn = self.connections.get(sid)
        if conn is not None and not conn.closed and conn.session is not None:
            if hmac.compare_digest(conn.session.password, password):
                return conn
            raise CallError(SESSION_EXPIRED, "unknown session or wrong password")
        pending = self._attaching.get(sid)
        if pending is not None:
            got = await asyncio.shield(pending)
            if got is None or got.session is None or \
                    not hmac.compare_digest(got.session.password, password):
                raise CallError(SESSION_EXPIRED, "unknown session or wrong password")
            return got
        fut: asyncio.Future[GrpcConnection | None] = asyncio.get_running_loop().create_future()
        self._attaching[sid] = fut
        try:
            got = await self._reattach(context, sid, password)
            fut.set_result(got)
        except BaseException:
            fut.set_result(None)
            raise
        finally:
            del self._attaching[sid]
        if got is None:
            raise CallError(SESSION_EXPIRED, "unknown session or wrong password")
        return got

    async def _reattach(self, context: grpc.aio.ServicerContext, sid: int,
                        password: bytes) -> GrpcConnection | None:
        sess = self.kernel.sessions.get(sid)
        if sess is None or sess.closing:
            return None
        conn = self.new_connection(context)
        self.kernel.connect(conn, 0, sess.timeout, sid, password)
        if not await conn.handshake():
            return None
        self.adopt(conn)
        return conn

    # -- serving -------------------------------------------------------------------------

    async def serve(self, task_status: Any) -> None:
        from plugins.transport_grpc.service import (
            NodesService,
            SessionsService,
            WatchesService,
        )

        options = [
            ("grpc.max_receive_message_length", self.max_message),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]
        server = grpc.aio.server(options=options)
        pbg.add_SessionsServicer_to_server(SessionsService(self), server)
        pbg.add_NodesServicer_to_server(NodesService(self), server)
        pbg.add_WatchesServicer_to_server(WatchesService(self), server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else \
            f"{self.host}:{self.port}"
        try:
            if self.tls is None:
                port = server.add_insecure_port(address)
            else:
                key, chain, trust = pem_material(self.tls)
                creds = grpc.ssl_server_credentials(
                    [(key, chain)], root_certificates=trust,
                    require_client_auth=self.tls.client_auth == "need")
                port = server.add_secure_port(address, creds)
        except RuntimeError as e:
            raise OSError(f"cannot listen on {address}: {e}") from None
        if port == 0:
            raise OSError(f"cannot listen on {address} (gRPC)")
        self.port = port
        await server.start()
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving the zkernel.v1 gRPC API on %s:%d", self.host, self.port)
        task_status.started(self.port)
        try:
            await asyncio.Event().wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(server)

    async def _stop(self, server: grpc.aio.Server) -> None:
        try:
            await self.health.enter_graceful_shutdown()
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        await server.stop(0.5)
