"""The ``digest`` scheme: ``user:password`` credentials, ``user:BASE64(SHA1(...))`` ids.

``superDigest`` (zoo.cfg, or ``zookeeper.DigestAuthenticationProvider.superDigest``)
names one digest id that becomes a super user and passes every ACL check.
``DigestAuthenticationProvider.digestAlg`` selects another hash, as ZooKeeper allows.
"""

from __future__ import annotations

import base64
import hashlib

from kernel.api import Id, ServerConfig, hookimpl


def digest_id(credentials: str, alg: str = "sha1") -> str:
    """``user:BASE64(H(user:password))`` for credentials ``user:password``."""
    user = credentials.split(":", 1)[0]
    h = hashlib.new(alg.replace("-", "").lower(), credentials.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(h).decode()}"


class DigestAuthProvider:
    """ZooKeeper's DigestAuthenticationProvider."""

    scheme = "digest"
    authenticated = True

    def __init__(self, super_digest: str | None = None, alg: str = "sha1") -> None:
        self.super_digest = super_digest
        self.alg = alg

    def authenticate(self, client_address: str, credentials: bytes) -> list[Id]:
        ident = digest_id(credentials.decode("utf-8", errors="replace"), self.alg)
        ids = [Id("digest", ident)]
        if self.super_digest is not None and ident == self.super_digest:
            ids.append(Id("super", ""))
        return ids

    def matches(self, conn_id: str, acl_id: str) -> bool:
        return conn_id == acl_id

    def is_valid(self, acl_id: str) -> bool:
        parts = acl_id.split(":")
        while parts and parts[-1] == "":
            parts.pop()  # Java's String.split drops trailing empty strings
        return len(parts) == 2


@hookimpl
def zk_auth_providers(config: ServerConfig) -> list[DigestAuthProvider]:
    """The digest provider, unless ``DigestAuthenticationProvider.enabled=false``."""
    if not config.digest_enabled:
        return []
    alg = config.get("DigestAuthenticationProvider.digestAlg") or "sha1"
    return [DigestAuthProvider(config.super_digest, alg)]
