"""The ``x509`` scheme: ZooKeeper's X509AuthenticationProvider.

A client that presents a certificate on the TLS port (``secureClientPort`` with
``ssl.clientAuth`` want or need) is given the id ``x509:<subject DN>``, the subject
formatted as Java's ``X500Principal.getName()`` does (RFC 2253: most specific RDN first,
``CN=client,O=example,C=DE``), so ACLs written for ZooKeeper match unchanged.
``X509AuthenticationProvider.superUser`` (or ``zookeeper.X509AuthenticationProvider.superUser``)
names one subject that becomes a super user.

The transport verifies the certificate against ``ssl.trustStore`` during the handshake
and hands the verified leaf certificate (DER) to ``authenticate_certificate``. An auth
packet for the ``x509`` scheme carries no certificate and is refused (AuthFailed).
"""

from __future__ import annotations

import logging

from kernel.api import Id, ServerConfig, hookimpl
from kernel.errors import AuthFailed

log = logging.getLogger(__name__)

# The attribute keywords Java's RFC 2253 form writes by name; every other attribute is
# written as its OID with the DER-encoded value in hex (``1.2.840.113549.1.9.1=#16...``).
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_KEYWORD_OIDS = {v: k for k, v in _RFC2253_KEYWORDS.items()}
_ESCAPED = ',=+<>#;"\\'


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _escape(value: str) -> str:
    """Java's AVA.toRFC2253String escaping of a string value."""
    out = []
    for ch in value:
        if ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    s = "".join(out)
    # Leading and trailing spaces are escaped (a leading '#' already is).
    lead = len(s) - len(s.lstrip(" "))
    if lead:
        s = "\\ " * lead + s[lead:]
    trail = len(s) - len(s.rstrip(" "))
    if trail and s.strip(" \\"):
        s = s[:len(s) - trail] + "\\ " * trail
    return s


def rfc2253_name(der: bytes) -> str:
    """The subject of a DER certificate as ``X500Principal.getName()`` formats it."""
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type

    cert = x509.load_der_x509_certificate(der)
    rdns = []
    for rdn in reversed(list(cert.subject.rdns)):
        avas = []
        for attr in rdn:
            oid = attr.oid.dotted_string
            keyword = _RFC2253_KEYWORDS.get(oid)
            value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
            if keyword is not None:
                avas.append(f"{keyword}={_escape(value)}")
                continue
            tag = getattr(attr, "_type", _ASN1Type.UTF8String).value
            if tag == _ASN1Type.BMPString.value:
                body = value.encode("utf-16-be")
            elif tag == _ASN1Type.UniversalString.value:
                body = value.encode("utf-32-be")
            else:
                body = value.encode("utf-8")
            encoded = bytes([tag]) + _der_length(len(body)) + body
            avas.append(f"{oid}=#{encoded.hex()}")
        rdns.append("+".join(avas))
    return ",".join(rdns)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def is_valid_dn(name: str) -> bool:
    """Whether ``name`` parses as a distinguished name (``X500Principal(name)``):
    RDNs of ``type=value`` with a known keyword or a dotted OID as the type."""
    if not name.strip():
        return True  # X500Principal("") is the empty name
    for rdn in _split_unescaped(name, ","):
        for ava in _split_unescaped(rdn, "+"):
            kw, sep, _ = ava.partition("=")
            kw = kw.strip()
            if not sep or not kw:
                return False
            upper = kw.upper()
            if upper.startswith("OID."):
                upper = upper[4:]
            if upper in _KEYWORD_OIDS or upper in ("S", "SERIALNUMBER", "EMAILADDRESS", "T",
                                                   "DNQ", "DNQUALIFIER", "SURNAME",
                                                   "GIVENNAME", "INITIALS", "GENERATION"):
                continue
            if not all(p.isdigit() for p in upper.split(".")) or "." not in upper:
                return False
    return True


class X509AuthProvider:
    """ZooKeeper's X509AuthenticationProvider: certificate subject → ``x509`` id."""

    scheme = "x509"
    authenticated = True

    def __init__(self, super_user: str | None = None) -> None:
        self.super_user = super_user

    def authenticate(self, client_address: str, credentials: bytes) -> list[Id]:
        raise AuthFailed("x509 ids come from the client certificate on the TLS port")

    def authenticate_certificate(self, client_address: str, der: bytes) -> list[Id]:
        """Ids for a verified client certificate (DER); raises ValueError if unreadable."""
        client_id = rfc2253_name(der)
        ids = []
        if self.super_user is not None and client_id == self.super_user:
            ids.append(Id("super", client_id))
            log.info("authenticated id %r as super user", client_id)
        ids.append(Id("x509", client_id))
        log.info("authenticated id %r for scheme x509 from %s", client_id, client_address)
        return ids

    def matches(self, conn_id: str, acl_id: str) -> bool:
        if self.super_user is not None and conn_id == self.super_user:
            return True
        return conn_id == acl_id

    def is_valid(self, acl_id: str) -> bool:
        return is_valid_dn(acl_id)


@hookimpl
def zk_auth_providers(config: ServerConfig) -> list[X509AuthProvider]:
    """The x509 provider (always registered: it only gives ids to TLS clients)."""
    return [X509AuthProvider(config.get("X509AuthenticationProvider.superUser"))]
