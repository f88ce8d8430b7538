"""The plugin contract: pluggy hook specifications (contract version 1).

Every plugin, built-in or third-party, is a module or object registered through the
``zkernel.plugins`` entry-point group that implements some of these hooks with
``@kernel.hookimpl``. Plugins use only the kernel's public API (``kernel.api``); the
kernel never imports a plugin.

Hooks are called from the event-loop thread. A hook must not block: anything that
does I/O is returned as an object whose async methods the runtime awaits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from kernel.acl import AuthProvider
    from kernel.config import ServerConfig
    from kernel.records import Id
    from kernel.storage import Storage
    from kernel.txn import Txn

PROJECT = "zkernel"
CONTRACT_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zk_transports(kernel: Any, config: ServerConfig) -> list[Any]:  # type: ignore[empty-body]
    """Return the client transports this plugin provides for this config.

    Called once at start-up. Return ``[]`` when the config does not enable the plugin
    (``kernel.transports`` lists the enabled transport names). Each returned object has
    ``name: str`` and ``async def serve(self, task_status) -> None`` that binds its
    listeners, reports readiness with ``task_status.started()``, and serves until
    cancelled. Transports talk to the kernel only through ``kernel.api.Kernel``'s
    session API (``connect``, ``submit``, ``disconnect``) and deliver replies and
    notifications through the ``ClientConnection`` protocol they implement.
    """


@hookspec(firstresult=True)
def zk_storage(config: ServerConfig) -> Storage | None:
    """Return the storage backend named by ``config.storage``, or None if not yours.

    The first non-None result wins. The backend owns durability (the transaction
    log) and recovery (the tree it returns from ``open``); see ``kernel.storage``.
    """


@hookspec
def zk_auth_providers(  # type: ignore[empty-body]
    config: ServerConfig,
) -> list[AuthProvider]:
    """Return authentication providers (``kernel.acl.AuthProvider``) to register.

    A provider's ``scheme`` names both the auth-packet scheme and the ACL scheme it
    matches. Return ``[]`` if the config disables the scheme. Later registrations of
    the same scheme replace earlier ones (so a third-party plugin can override).
    """


@hookspec
def zk_cli_commands() -> list[Any]:  # type: ignore[empty-body]
    """Return extra ``zkernel`` sub-commands this plugin offers.

    Each object has ``name: str``, ``help: str``, ``configure(parser)`` (add arguments
    to an ``argparse`` sub-parser) and ``run(args) -> int`` (the exit status; print
    readable errors to stderr, never a traceback for bad input).
    """


@hookspec
def zk_on_commit(txn: Txn) -> None:
    """Called after a transaction has been applied to the tree, in zxid order.

    For metrics, audit and tracing. Must be fast and must not raise; it runs on the
    write path. Only called if at least one plugin implements it.
    """


@dataclass(frozen=True, slots=True)
class WriteDone:
    """A client's write (create, delete, setData, setACL, multi, ...) was answered on the
    server the client is connected to: who asked (session, ids, address), what (``op``,
    the decoded ``request``), the committed ``txn`` (None if the request never reached
    the log) and the outcome (``err``: 0 or the ZooKeeper error code)."""

    session_id: int
    ids: tuple[Id, ...]
    address: str
    op: int
    request: object
    txn: Txn | None
    err: int


@runtime_checkable
class WriteObserver(Protocol):
    """Told about every client write answered on this server (see ``WriteDone``)."""

    def write_done(self, event: WriteDone) -> None:
        """Runs on the write path: must be fast and must not raise."""
        ...


@hookspec
def zk_write_observers(kernel: Any,  # type: ignore[empty-body]
                       config: ServerConfig) -> list[WriteObserver]:
    """Objects to tell about each client write answered on this server (audit logs,
    per-user metrics); the kernel calls them only if some plugin returns one."""


@hookspec
def zk_on_session_created(session_id: int, timeout_ms: int) -> None:
    """Called when a session's createSession transaction has been applied."""


@hookspec
def zk_on_session_closed(session_id: int, expired: bool) -> None:
    """Called when a session has been closed (``expired``: by timeout, not by client)."""


@runtime_checkable
class SaslAuthProvider(Protocol):
    """The optional SASL capability of the auth provider registered for scheme ``sasl``.

    The kernel hands every ``sasl`` request (opcode 102, ``GetSASLRequest``) of a
    connection to ``sasl_step`` and answers with ``SetSASLResponse{token}``. ``conn``
    identifies the connection (the provider keeps its per-connection mechanism state,
    e.g. in a ``WeakKeyDictionary``); ``client_address`` is the peer's address.

    Returns the server's token (None for a null token) and the ids the connection
    gains now (``sasl:<authorizationID>``, ``super:`` ...; empty until the exchange
    completes). To refuse, raise ``AuthFailed`` (or ``SessionClosedRequireSaslAuth``
    when the server requires SASL): the kernel replies with that code and closes the
    connection, as ZooKeeper does; the session itself lives on until it expires.
    """

    def sasl_step(self, conn: object, client_address: str,
                  token: bytes) -> tuple[bytes | None, list[Id]]:
        """One step of the server side of the SASL exchange."""
        ...
