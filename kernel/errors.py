"""ZooKeeper error codes as exception types: one class per code.

``ZooKeeperError.for_code(code)`` gives the class for a wire code; every class carries
``code`` so a transport can put it on the wire without a lookup table of its own.
"""

from __future__ import annotations

from typing import ClassVar


class ZooKeeperError(Exception):
    """Base of every error that a client sees as a ZooKeeper error code."""

    code: ClassVar[int] = -1
    _by_code: ClassVar[dict[int, type[ZooKeeperError]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        ZooKeeperError._by_code[cls.code] = cls

    def __init__(self, message: str = "") -> None:
        super().__init__(message or type(self).__name__)

    @staticmethod
    def for_code(code: int) -> type[ZooKeeperError]:
        """The exception class for a wire error code."""
        return ZooKeeperError._by_code[code]


class SystemError_(ZooKeeperError):  # noqa: N801 - mirrors KeeperException.Code.SYSTEMERROR
    """Generic server-side failure (never sent as such)."""

    code = -1


class RuntimeInconsistency(ZooKeeperError):
    """In a failed multi: an operation that was not attempted."""

    code = -2


class DataInconsistency(ZooKeeperError):
    """Internal state disagreement (not sent to clients)."""

    code = -3


class MarshallingError(ZooKeeperError):
    """The request body could not be decoded or is not a valid combination."""

    code = -5


class Unimplemented(ZooKeeperError):
    """Unknown or disabled operation."""

    code = -6


class BadArguments(ZooKeeperError):
    """Invalid path, flags, TTL or other argument."""

    code = -8


class UnknownSession(ZooKeeperError):
    """The session is not known to this server."""

    code = -12


class ApiError(ZooKeeperError):
    """Range marker of API errors (never sent)."""

    code = -100


class NoNode(ZooKeeperError):
    """The node (or, for create, its parent) does not exist."""

    code = -101


class NoAuth(ZooKeeperError):
    """The caller lacks the permission the operation needs."""

    code = -102


class BadVersion(ZooKeeperError):
    """The expected version does not match."""

    code = -103


class NoChildrenForEphemerals(ZooKeeperError):
    """Ephemeral nodes may not have children."""

    code = -108


class NodeExists(ZooKeeperError):
    """The node already exists."""

    code = -110


class NotEmpty(ZooKeeperError):
    """The node has children."""

    code = -111


class SessionExpired(ZooKeeperError):
    """The session has expired or is closing."""

    code = -112


class InvalidACL(ZooKeeperError):
    """The ACL list is empty, or an entry has an unknown scheme or an invalid id."""

    code = -114


class AuthFailed(ZooKeeperError):
    """Authentication failed; the connection is closed after the reply."""

    code = -115


class SessionMoved(ZooKeeperError):
    """The session moved to another server (quorum only)."""

    code = -118


class NotReadOnly(ZooKeeperError):
    """A write on a read-only server."""

    code = -119


class EphemeralOnLocalSession(ZooKeeperError):
    """An ephemeral create on a local session (quorum only)."""

    code = -120


class NoWatcher(ZooKeeperError):
    """checkWatches / removeWatches found no matching watch."""

    code = -121


class ReconfigDisabled(ZooKeeperError):
    """Reconfiguration is disabled."""

    code = -123


class SessionClosedRequireSaslAuth(ZooKeeperError):
    """The server requires an authenticated session."""

    code = -124


class QuotaExceeded(ZooKeeperError):
    """A hard quota would be exceeded."""

    code = -125


class Throttled(ZooKeeperError):
    """The server is overloaded."""

    code = -127


class ProtocolError(Exception):
    """A frame or record that cannot be decoded: the connection is closed."""
