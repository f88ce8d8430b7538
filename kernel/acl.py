"""ACL semantics: permission checks, the create/setACL fix-up, and auth providers.

An ``AuthProvider`` is what an auth plugin contributes (see ``hookspecs``); ``world``,
``auth`` (a pseudo-scheme) and ``ip`` are built into the kernel because every
connection has an address and every deployment uses them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from kernel.errors import AuthFailed, InvalidACL, NoAuth
from kernel.protocol import Perm
from kernel.records import ACL, Id

OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.ALL, "world", "anyone"),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.READ, "world", "anyone"),)
SUPER_ID = Id("super", "")


@runtime_checkable
class AuthProvider(Protocol):
    """An authentication scheme: turns credentials into ids and matches ACL ids.

    ``scheme`` is the name used in auth packets and ACL entries. ``authenticated`` says
    whether ids of this scheme count for the ``auth`` pseudo-scheme (digest, sasl, x509
    do; ip does not).
    """

    scheme: str
    authenticated: bool

    def authenticate(self, client_address: str, credentials: bytes) -> list[Id]:
        """Ids the connection gains from an auth packet; raise AuthFailed to refuse."""
        ...

    def matches(self, conn_id: str, acl_id: str) -> bool:
        """Whether a connection id of this scheme satisfies an ACL entry's id."""
        ...

    def is_valid(self, acl_id: str) -> bool:
        """Whether ``acl_id`` is a well-formed id for an ACL entry of this scheme."""
        ...


class IPAuthProvider:
    """The ``ip`` scheme: every connection holds ``ip:<address>``; ACL ids may be CIDRs."""

    scheme = "ip"
    authenticated = False

    def authenticate(self, client_address: str, credentials: bytes) -> list[Id]:
        # ZooKeeper's ip provider authenticates an auth packet as the peer address.
        return [Id("ip", client_address)]

    def matches(self, conn_id: str, acl_id: str) -> bool:
        try:
            addr = ipaddress.ip_address(conn_id)
            net = ipaddress.ip_network(acl_id, strict=False)
        except ValueError:
            return False
        return addr.version == net.version and addr in net

    def is_valid(self, acl_id: str) -> bool:
        try:
            ipaddress.ip_network(acl_id, strict=False)
        except ValueError:
            return False
        return True


class ACLChecker:
    """Permission checks and ACL fix-up against the registered providers."""

    def __init__(self, providers: Mapping[str, AuthProvider], skip_acl: bool = False) -> None:
        self.providers = dict(providers)
        self.skip_acl = skip_acl

    def allowed(self, acl: Sequence[ACL], ids: Sequence[Id], perm: int) -> bool:
        """Whether a connection holding ``ids`` has ``perm`` on a node with ``acl``."""
        if acl is OPEN_ACL_UNSAFE or self.skip_acl or not acl:
            return True
        for i in ids:
            if i.scheme == "super":
                return True
        for entry in acl:
            if not entry.perms & perm:
                continue
            if entry.scheme == "world" and entry.id == "anyone":
                return True
            provider = self.providers.get(entry.scheme)
            if provider is None:
                continue
            for i in ids:
                if i.scheme == entry.scheme and provider.matches(i.id, entry.id):
                    return True
        return False

    def check(self, acl: Sequence[ACL], ids: Sequence[Id], perm: int) -> None:
        """Raise NoAuth unless allowed."""
        if not self.allowed(acl, ids, perm):
            raise NoAuth()

    def fixup(self, acl: Iterable[ACL] | None, ids: Sequence[Id]) -> tuple[ACL, ...]:
        """Validate and normalise an ACL list for create/setACL (raises InvalidACL)."""
        if acl is None:
            raise InvalidACL("null ACL")
        unique: list[ACL] = []
        for entry in acl:
            if entry not in unique:
                unique.append(entry)
        if not unique:
            raise InvalidACL("empty ACL")
        out: list[ACL] = []
        for entry in unique:
            if entry.scheme == "world":
                if entry.id != "anyone":
                    raise InvalidACL(f"world:{entry.id}")
                out.append(entry)
            elif entry.scheme == "auth":
                expanded = False
                for i in ids:
                    provider = self.providers.get(i.scheme)
                    if provider is not None and provider.authenticated:
                        out.append(ACL(entry.perms, i.scheme, i.id))
                        expanded = True
                if not expanded:
                    raise InvalidACL("auth scheme without an authenticated id")
            else:
                provider = self.providers.get(entry.scheme)
                if provider is None or not provider.is_valid(entry.id):
                    raise InvalidACL(f"{entry.scheme}:{entry.id}")
                out.append(entry)
        result = tuple(dict.fromkeys(out))
        # Share the common open ACL so permission checks can test identity first.
        return OPEN_ACL_UNSAFE if result == OPEN_ACL_UNSAFE else result

    def authenticate(self, scheme: str, client_address: str, credentials: bytes) -> list[Id]:
        """Ids gained from an auth packet; AuthFailed for an unknown scheme."""
        provider = self.providers.get(scheme)
        if provider is None:
            raise AuthFailed(f"unknown scheme {scheme}")
        return provider.authenticate(client_address, credentials)


def redact_for_reader(acl: Sequence[ACL]) -> list[ACL]:
    """getACL without ADMIN: digest hashes are hidden as ``user:x``."""
    out = []
    for entry in acl:
        if entry.scheme == "digest":
            user = entry.id.split(":", 1)[0]
            out.append(ACL(entry.perms, "digest", user + ":x"))
        else:
            out.append(entry)
    return out
