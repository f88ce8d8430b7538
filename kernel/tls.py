"""TLS settings and contexts from ZooKeeper's keys, for every TLS endpoint.

``TlsSettings.from_config(config, "ssl.")`` reads the client-port keys and
``"ssl.quorum."`` the ones between ensemble members (``ssl.keyStore.*``,
``ssl.trustStore.*``, ``ssl.protocol``, ``ssl.enabledProtocols``, ``ssl.ciphersuites``,
``ssl.clientAuth``, ``ssl.hostnameVerification``, ...; with or without the
``zookeeper.`` prefix). Key and trust stores are PEM or PKCS12 files (JKS and BCFKS are
refused with a config error saying how to convert them). ``build_context`` makes the
``ssl.SSLContext``; ``ReloadingContext`` rebuilds it when the store files change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.config import ConfigError, ServerConfig

log = logging.getLogger(__name__)

_PROTOCOLS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}
_KEY_EXCHANGE = {"ECDHE_ECDSA": "ECDHE-ECDSA-", "ECDHE_RSA": "ECDHE-RSA-",
                 "DHE_RSA": "DHE-RSA-", "DHE_DSS": "DHE-DSS-", "RSA": ""}
_TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                           "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                           "TLS_AES_128_CCM_8_SHA256"})
_EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}


def _bool(key: str, value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")


@dataclass(frozen=True)
class StoreSpec:
    """One key or trust store: its file, password and format (PEM or PKCS12)."""

    key: str
    path: Path
    password: str | None
    kind: str


@dataclass(frozen=True)
class TlsSettings:
    """The ``ssl.*`` (or ``ssl.quorum.*``) keys of a zoo.cfg, validated."""

    prefix: str
    keystore: StoreSpec | None
    truststore: StoreSpec | None
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion
    ciphers: tuple[str, ...]
    client_auth: str
    hostname_verification: bool
    handshake_timeout: float
    reload: bool
    auth_provider: str

    @classmethod
    def from_config(cls, config: ServerConfig, prefix: str = "ssl.",
                    reload_key: str = "client.certReload") -> TlsSettings:
        """Read and check the keys; raises ConfigError with the offending key."""

        def get(name: str) -> str | None:
            v = config.get(prefix + name)
            return v.strip() if v is not None else None

        protocol = get("protocol") or "TLSv1.2"
        enabled = [p.strip() for p in (get("enabledProtocols") or protocol).split(",")
                   if p.strip()]
        versions: list[ssl.TLSVersion] = []
        for p in enabled:
            if p == "TLS":
                versions += [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
            elif p in _PROTOCOLS:
                versions.append(_PROTOCOLS[p])
            else:
                raise ConfigError(f"{prefix}enabledProtocols: unknown protocol {p!r} "
                                  f"(expected TLSv1.2, TLSv1.3, ...)")
        if protocol != "TLS" and protocol not in _PROTOCOLS:
            raise ConfigError(f"{prefix}protocol: unknown protocol {protocol!r}")
        auth = (get("clientAuth") or "need").lower()
        if auth not in _CLIENT_AUTH:
            raise ConfigError(f"{prefix}clientAuth must be none, want or need, got {auth!r}")
        # Apache ZooKeeper's secure client port drops a connection whose handshake has
        # not finished after 10 s (Netty's default); zkernel lets the key set it.
        raw_timeout = get("handshakeDetectionTimeoutMillis") or "10000"
        try:
            timeout_ms = int(raw_timeout)
        except ValueError:
            raise ConfigError(f"{prefix}handshakeDetectionTimeoutMillis must be an "
                              f"integer, got {raw_timeout!r}") from None
        if timeout_ms <= 0:
            timeout_ms = 10000
        ciphers = tuple(c.strip() for c in (get("ciphersuites") or "").split(",")
                        if c.strip())
        return cls(
            prefix=prefix,
            keystore=_store(config, prefix, "keyStore"),
            truststore=_store(config, prefix, "trustStore"),
            min_version=min(versions),
            max_version=max(versions),
            ciphers=ciphers,
            client_auth=auth,
            hostname_verification=_bool(prefix + "hostnameVerification",
                                        get("hostnameVerification"), True),
            handshake_timeout=timeout_ms / 1000,
            reload=_bool(reload_key, config.get(reload_key), False),
            auth_provider=get("authProvider") or "x509",
        )

    def files(self) -> list[Path]:
        """The store files a reload watches."""
        return [s.path for s in (self.keystore, self.truststore) if s is not None]


def _store(config: ServerConfig, prefix: str, which: str) -> StoreSpec | None:
    key = f"{prefix}{which}"
    location = (config.get(key + ".location") or "").strip()
    if not location:
        return None
    password = config.get(key + ".password")
    pw_path = (config.get(key + ".passwordPath") or "").strip()
    if pw_path:
        # ZooKeeper 3.8: the password file takes precedence over the password key.
        try:
            password = Path(pw_path).read_text().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{key}.passwordPath: cannot read {pw_path}: "
                              f"{e.strerror}") from None
    kind_raw = (config.get(key + ".type") or "").strip().upper()
    if not kind_raw:
        kind = next((k for ext, k in _EXTENSIONS.items() if location.lower().endswith(ext)),
                    "")
        if not kind:
            raise ConfigError(f"{key}.location={location}: unable to detect the store type "
                              f"from the file name; set {key}.type to PEM or PKCS12")
    else:
        kind = kind_raw
    if kind in ("JKS", "BCFKS"):
        raise ConfigError(
            f"{key}: {kind} stores are not supported; convert it to PKCS12 "
            f"(keytool -importkeystore -srckeystore {location} -destkeystore "
            f"{Path(location).with_suffix('.p12')} -deststoretype PKCS12) or PEM")
    if kind not in ("PEM", "PKCS12"):
        raise ConfigError(f"{key}.type must be PEM or PKCS12, got {kind_raw!r}")
    return StoreSpec(key, Path(location), password or None, kind)


def _read(spec: StoreSpec) -> bytes:
    try:
        return spec.path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{spec.key}.location: cannot read {spec.path}: "
                          f"{e.strerror}") from None


def _load_pkcs12(spec: StoreSpec) -> tuple[Any, Any, list[Any]]:
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(spec)
    pw = spec.password.encode() if spec.password else None
    try:
        return pkcs12.load_key_and_certificates(data, pw)
    except ValueError as e:
        if pw is None:
            try:
                return pkcs12.load_key_and_certificates(data, b"")
            except ValueError:
                pass
        raise ConfigError(f"{spec.key}: cannot read PKCS12 store {spec.path} "
                          f"(wrong password or not PKCS12): {e}") from None


def _load_keystore(ctx: ssl.SSLContext, spec: StoreSpec) -> None:
    if spec.kind == "PEM":
        _read(spec)  # a readable error for a missing file
        try:
            ctx.load_cert_chain(str(spec.path), password=spec.password or None)
        except (ssl.SSLError, ValueError, TypeError) as e:
            raise ConfigError(f"{spec.key}: cannot load the key and certificate from "
                              f"{spec.path} (one PEM file with the private key and the "
                              f"certificate chain): {e}") from None
        return
    from cryptography.hazmat.primitives import serialization

    key, cert, extra = _load_pkcs12(spec)
    if key is None or cert is None:
        raise ConfigError(f"{spec.key}: {spec.path} holds no private key with a certificate")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += cert.public_bytes(serialization.Encoding.PEM)
    for c in extra:
        pem += c.public_bytes(serialization.Encoding.PEM)
    _load_cert_chain_bytes(ctx, pem, spec)


def _load_cert_chain_bytes(ctx: ssl.SSLContext, pem: bytes, spec: StoreSpec) -> None:
    """load_cert_chain reads files only: hand it an anonymous in-memory file (memfd), or a
    private temporary file removed at once where there is no memfd."""
    try:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("zkernel-keystore")
            try:
                os.write(fd, pem)
                ctx.load_cert_chain(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            return
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "keystore.pem"
            p.touch(mode=0o600)
            p.write_bytes(pem)
            ctx.load_cert_chain(str(p))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"{spec.key}: cannot use the key in {spec.path}: {e}") from None


def _load_truststore(ctx: ssl.SSLContext, spec: StoreSpec) -> None:
    if spec.kind == "PEM":
        _read(spec)
        try:
            ctx.load_verify_locations(cafile=str(spec.path))
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(f"{spec.key}: cannot load certificates from {spec.path}: "
                              f"{e}") from None
        return
    from cryptography.hazmat.primitives import serialization

    _, cert, extra = _load_pkcs12(spec)
    certs = ([cert] if cert is not None else []) + list(extra)
    if not certs:
        raise ConfigError(f"{spec.key}: {spec.path} holds no certificates")
    ctx.load_verify_locations(cadata="".join(
        c.public_bytes(serialization.Encoding.PEM).decode() for c in certs))


def pem_material(settings: TlsSettings) -> tuple[bytes, bytes, bytes | None]:
    """(private key, certificate chain, trusted certificates) as unencrypted PEM, for
    TLS stacks that take bytes rather than an SSLContext (gRPC). ConfigError if the
    stores cannot be read."""
    from cryptography.hazmat.primitives import serialization

    spec = settings.keystore
    if spec is None:
        raise ConfigError(f"{settings.prefix}keyStore.location is required for TLS")
    if spec.kind == "PEM":
        raw = _read(spec)
        try:
            key = serialization.load_pem_private_key(
                raw, spec.password.encode() if spec.password else None)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{spec.key}: no usable private key in {spec.path}: "
                              f"{e}") from None
        blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                            raw, re.S)
        if not blocks:
            raise ConfigError(f"{spec.key}: no certificate in {spec.path}")
        chain = b"\n".join(blocks) + b"\n"
    else:
        key, cert, extra = _load_pkcs12(spec)
        if key is None or cert is None:
            raise ConfigError(f"{spec.key}: {spec.path} holds no private key with a "
                              f"certificate")
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM)
                         for c in [cert, *extra])
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    trust: bytes | None = None
    ts = settings.truststore
    if ts is not None:
        if ts.kind == "PEM":
            trust = _read(ts)
        else:
            _, cert, extra = _load_pkcs12(ts)
            trust = b"".join(c.public_bytes(serialization.Encoding.PEM)
                             for c in ([cert] if cert is not None else []) + list(extra))
    return key_pem, chain, trust


def openssl_cipher_name(name: str) -> str | None:
    """The OpenSSL name of a cipher suite given by its IANA/Java name (as ZooKeeper's
    ``ssl.ciphersuites`` lists them); OpenSSL names pass through; None if unknown."""
    if "-" in name or not name.startswith("TLS_"):
        return name
    if "_WITH_" not in name:
        return None
    kx, enc = name[4:].split("_WITH_", 1)
    prefix = _KEY_EXCHANGE.get(kx)
    if prefix is None:
        return None
    if enc.startswith("CHACHA20_POLY1305"):
        return prefix + "CHACHA20-POLY1305"
    m = re.fullmatch(r"AES_(128|256)_(GCM|CBC)_(SHA|SHA256|SHA384)", enc)
    if m is None:
        return None
    bits, mode, mac = m.groups()
    return f"{prefix}AES{bits}-GCM-{mac}" if mode == "GCM" else f"{prefix}AES{bits}-{mac}"


def _set_ciphers(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    key = settings.prefix + "ciphersuites"
    names: list[str] = []
    for c in settings.ciphers:
        if c in _TLS13_SUITES:
            continue  # TLS 1.3 suites are always on with TLSv1.3 (not settable here)
        n = openssl_cipher_name(c)
        if n is None:
            log.warning("%s: cipher suite %s is unknown, ignored", key, c)
        else:
            names.append(n)
    if not names:
        if settings.max_version >= ssl.TLSVersion.TLSv1_3 and any(
                c in _TLS13_SUITES for c in settings.ciphers):
            return
        raise ConfigError(f"{key}: none of {', '.join(settings.ciphers)} is usable")
    try:
        ctx.set_ciphers(":".join(names))
    except ssl.SSLError:
        raise ConfigError(f"{key}: none of {', '.join(settings.ciphers)} is supported by "
                          f"this OpenSSL") from None
    have = {c["name"] for c in ctx.get_ciphers()}
    for n in names:
        if n not in have:
            log.warning("%s: cipher suite %s is not supported here, ignored", key, n)


def build_context(settings: TlsSettings, server_side: bool = True) -> ssl.SSLContext:
    """A fresh SSLContext for the settings (server or client side of a connection)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.minimum_version = settings.min_version
        ctx.maximum_version = settings.max_version
    except ValueError as e:
        raise ConfigError(f"{settings.prefix}enabledProtocols: {e}") from None
    if settings.ciphers:
        _set_ciphers(ctx, settings)
    if settings.keystore is not None:
        _load_keystore(ctx, settings.keystore)
    elif server_side:
        raise ConfigError(f"{settings.prefix}keyStore.location is required for TLS "
                          f"(the server's key and certificate)")
    if settings.truststore is not None:
        _load_truststore(ctx, settings.truststore)
    else:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH if server_side
                               else ssl.Purpose.SERVER_AUTH)
    if server_side:
        ctx.verify_mode = _CLIENT_AUTH[settings.client_auth]
    else:
        ctx.check_hostname = settings.hostname_verification
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ReloadingContext:
    """The current server SSLContext, rebuilt when the store files change.

    ``context`` is handed to the listener once; its SNI callback moves every new
    connection to ``current``, so a reload needs no new listener.
    """

    def __init__(self, settings: TlsSettings,
                 build: Callable[[TlsSettings], ssl.SSLContext] = build_context) -> None:
        self.settings = settings
        self._build_fn = build
        self._stamp = self._stamps()
        self.current = self._build()
        self.context = self.current
        self.reloads = 0

    def _build(self) -> ssl.SSLContext:
        ctx = self._build_fn(self.settings)
        ctx.sni_callback = self._select
        return ctx

    def _select(self, sslobj: Any, server_name: str | None, ctx: ssl.SSLContext) -> None:
        cur = self.current
        if ctx is not cur:
            sslobj.context = cur

    def _stamps(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for p in self.settings.files():
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def check(self) -> bool:
        """Rebuild the context if a store file changed; True if it was replaced."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            new = self._build()
        except ConfigError as e:
            log.error("TLS certificate reload failed, keeping the previous ones: %s", e)
            return False
        self.current = new
        self.reloads += 1
        log.info("reloaded the TLS key and trust stores (%s)",
                 ", ".join(str(p) for p in self.settings.files()))
        return True

    async def watch(self, interval: float = 0.5) -> None:
        """Poll the store files until cancelled (``client.certReload=true``)."""
        while True:
            await asyncio.sleep(interval)
            self.check()
