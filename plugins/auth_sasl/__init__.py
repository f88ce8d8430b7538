"""SASL authentication (DIGEST-MD5 and GSSAPI/Kerberos) as ZooKeeper's server does it.

Configured exactly like ZooKeeper:

* ``java.security.auth.login.config`` (or zkernel's ``kernel.sasl.jaasConfig``) names
  a JAAS file; its ``Server`` section (``zookeeper.sasl.serverconfig``) lists the
  DIGEST-MD5 users (``DigestLoginModule ... user_bob="secret"``) and/or the Kerberos
  identity (``Krb5LoginModule ... keyTab="..." principal="zookeeper/host@REALM"``).
* ``zookeeper.authProvider.N=org.apache.zookeeper.server.auth.SASLAuthenticationProvider``
  registers the ``sasl`` ACL scheme (without it ``sasl`` ACLs are InvalidACL, as in
  ZooKeeper, though the handshake still works).
* ``zookeeper.superUser[.N]``, ``SASLAuthenticationProvider.superPassword``,
  ``letAnySaslUserDoX``, ``kerberos.removeHostFromPrincipal``,
  ``kerberos.removeRealmFromPrincipal``, ``allowSaslFailedClients`` and
  ``sessionRequireClientSASLAuth`` keep their ZooKeeper meaning.

The client sends opcode 102 requests carrying SASL tokens; the kernel hands each to
``SaslProvider.sasl_step``. ZooKeeper picks one mechanism per server (GSSAPI when the
section has a Kerberos identity); zkernel serves both when both are configured, telling
them apart by the client's first token (empty for DIGEST-MD5, a GSS-API token else).
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path

from kernel.api import ConfigError, Id, ServerConfig, hookimpl
from kernel.errors import AuthFailed, SessionClosedRequireSaslAuth
from plugins.auth_sasl.digest_md5 import DigestError, DigestMD5Server
from plugins.auth_sasl.gssapi_server import GssapiError, GssapiServer, acquire_acceptor
from plugins.auth_sasl.jaas import DIGEST_MODULE, KRB5_MODULE, JaasError, load_jaas
from plugins.auth_sasl.kerberos_name import KerberosName, default_realm, sasl_id

log = logging.getLogger(__name__)

SASL_PROVIDER_CLASS = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


def _flag(config: ServerConfig, key: str) -> bool:
    return (config.get(key) or "false").strip().lower() == "true"


class SaslSettings:
    """What the plugin reads from zoo.cfg and the JAAS file."""

    def __init__(self, config: ServerConfig) -> None:
        self.acl_enabled = any(
            k.removeprefix("zookeeper.").startswith("authProvider.")
            and v.strip() == SASL_PROVIDER_CLASS for k, v in config.raw.items())
        jaas = (config.get("kernel.sasl.jaasConfig")
                or config.get("java.security.auth.login.config"))
        self.users: dict[str, str] = {}
        self.keytab: str | None = None
        self.principal: str | None = None
        self.has_server_section = False
        if jaas:
            path = Path(jaas)
            if not path.is_absolute() and config.source is not None:
                path = config.source.parent / path
            section = config.get("sasl.serverconfig") or "Server"
            sections = load_jaas(path)
            modules = sections.get(section)
            if modules is None:
                raise JaasError(f"{path}: no '{section}' section (zookeeper.sasl.serverconfig)")
            self.has_server_section = True
            for m in modules:
                if m.name == DIGEST_MODULE:
                    for k, v in m.options.items():
                        if k.startswith("user_"):
                            self.users[k[5:]] = v
                elif m.name == KRB5_MODULE:
                    self.keytab = m.options.get("keyTab")
                    self.principal = m.options.get("principal")
                    if not self.principal:
                        raise JaasError(f"{path}: {section}: Krb5LoginModule needs principal=")
        self.super_password = config.get("SASLAuthenticationProvider.superPassword")
        self.super_users = {v.strip() for k, v in config.raw.items()
                            if _is_super_user_key(k)}
        self.any_user = config.get("letAnySaslUserDoX")
        self.remove_host = _flag(config, "kerberos.removeHostFromPrincipal")
        self.remove_realm = _flag(config, "kerberos.removeRealmFromPrincipal")
        self.allow_failed = _flag(config, "allowSaslFailedClients")
        required = _flag(config, "sessionRequireClientSASLAuth") or (
            _flag(config, "enforce.auth.enabled")
            and "sasl" in {s.strip() for s in (config.get("enforce.auth.schemes") or "")
                           .split(",")})
        self.required = required
        krb5_conf = config.get("java.security.krb5.conf")
        if krb5_conf and "KRB5_CONFIG" not in os.environ:
            os.environ["KRB5_CONFIG"] = krb5_conf


def _is_super_user_key(key: str) -> bool:
    k = key if key.startswith("zookeeper.") else "zookeeper." + key
    return k == "zookeeper.superUser" or k.startswith("zookeeper.superUser.")


class SaslProvider:
    """ZooKeeper's SASLAuthenticationProvider plus the server side of the handshake."""

    scheme = "sasl"

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self.authenticated = settings.acl_enabled
        self._creds: object | None = None
        if settings.principal:
            self._creds = acquire_acceptor(settings.keytab, settings.principal)
        self._realm = default_realm()
        self._exchanges: weakref.WeakKeyDictionary[object, DigestMD5Server | GssapiServer] = (
            weakref.WeakKeyDictionary())

    # -- ACL scheme ------------------------------------------------------------------

    def authenticate(self, client_address: str, credentials: bytes) -> list[Id]:
        # ZooKeeper: SASL is negotiated with opcode sasl, never by an auth packet.
        raise AuthFailed("sasl ids come from the SASL handshake")

    def matches(self, conn_id: str, acl_id: str) -> bool:
        if conn_id == "super" or conn_id == acl_id:
            return True
        return self.settings.any_user is not None and acl_id == self.settings.any_user

    def is_valid(self, acl_id: str) -> bool:
        if not self.settings.acl_enabled:
            return False  # ZooKeeper: no sasl provider registered -> InvalidACL
        try:
            KerberosName.parse(acl_id)
        except ValueError:
            return False
        return True

    # -- handshake ---------------------------------------------------------------------

    def _password(self, user: str) -> str | None:
        if user == "super" and self.settings.super_password is not None:
            return self.settings.super_password
        return self.settings.users.get(user)

    def sasl_step(self, conn: object, client_address: str,
                  token: bytes) -> tuple[bytes | None, list[Id]]:
        """One client token in, the server's token and any new ids out."""
        ex = self._exchanges.get(conn)
        try:
            if ex is None:
                ex = self._start(token)
                self._exchanges[conn] = ex
            elif ex.complete:
                if token:
                    raise DigestError("SASL exchange already complete")
                return None, []
            out = ex.evaluate(token)
        except (DigestError, GssapiError) as e:
            self._exchanges.pop(conn, None)
            log.warning("client %s failed to SASL authenticate: %s", client_address, e)
            if self.settings.allow_failed and not self.settings.required:
                return None, []
            if self.settings.required:
                raise SessionClosedRequireSaslAuth(str(e)) from None
            raise AuthFailed(str(e)) from None
        if not ex.complete:
            return out, []
        ident = sasl_id(ex.authentication_id, ex.authorization_id, self._realm,
                        self.settings.remove_host, self.settings.remove_realm)
        log.info("client %s: adding SASL authorization for authorizationID: %s",
                 client_address, ident)
        ids = [Id("sasl", ident)]
        if ident in self.settings.super_users:
            ids.append(Id("super", ""))
        return out, ids

    def _start(self, token: bytes) -> DigestMD5Server | GssapiServer:
        if token and self._creds is not None:
            return GssapiServer(self._creds)
        if self.settings.users or self._creds is None:
            return DigestMD5Server(self._password)
        return GssapiServer(self._creds)


@hookimpl
def zk_auth_providers(config: ServerConfig) -> list[SaslProvider]:
    """The ``sasl`` provider when a JAAS server section or the SASL authProvider is set."""
    try:
        settings = SaslSettings(config)
        if not settings.has_server_section and not settings.acl_enabled:
            return []
        return [SaslProvider(settings)]
    except (JaasError, GssapiError) as e:
        raise ConfigError(str(e)) from None
