"""The server side of SASL DIGEST-MD5 (RFC 2831), as ZooKeeper's server speaks it.

No maintained Python library implements the DIGEST-MD5 *server* (pure-sasl, which
kazoo uses, is client-only), so this follows RFC 2831 section 2.1 closely, for the one
quality of protection ZooKeeper's server offers: ``auth`` (authentication only, no
security layer). The realm and the digest-uri host are ZooKeeper's fixed
``zk-sasl-md5``; the service is ``zookeeper``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

SERVER_NAME = "zk-sasl-md5"
PROTOCOL = "zookeeper"
MAX_RESPONSE = 4096  # RFC 2831 2.1.2: a digest-response is at most 4096 bytes


class DigestError(Exception):
    """The client's response is malformed or does not prove the password."""


def parse_directives(data: bytes) -> dict[str, str]:
    """``key=value`` / ``key="quoted"`` pairs separated by commas (RFC 2831 2.1.2)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DigestError("response is not UTF-8") from None
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise DigestError("directive without '='")
        key = text[i:eq].strip().lower()
        if not key or not all(c.isalnum() or c in "-_" for c in key):
            raise DigestError(f"bad directive name {key!r}")
        i = eq + 1
        if i < n and text[i] == '"':
            i += 1
            val = []
            while True:
                if i >= n:
                    raise DigestError("unterminated quoted string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    val.append(text[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    val.append(c)
                    i += 1
            value = "".join(val)
        else:
            j = text.find(",", i)
            j = n if j < 0 else j
            value = text[i:j].strip()
            i = j
        if key in out:
            raise DigestError(f"directive {key} appears twice")
        out[key] = value
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i < n and text[i] != ",":
            raise DigestError("expected ',' between directives")
    return out


def _enc(s: str) -> bytes:
    # RFC 2831 2.1.2.1: with charset=utf-8, strings representable in ISO 8859-1 are
    # hashed in ISO 8859-1.
    try:
        return s.encode("iso-8859-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def _h(b: bytes) -> bytes:
    return hashlib.md5(b).digest()


def _hex(b: bytes) -> str:
    return b.hex()


class DigestMD5Server:
    """One connection's DIGEST-MD5 exchange: challenge, then verify and rspauth.

    ``password_for(user)`` returns the user's password or None if unknown.
    """

    def __init__(self, password_for: Callable[[str], str | None],
                 realm: str = SERVER_NAME, protocol: str = PROTOCOL,
                 server_name: str = SERVER_NAME) -> None:
        self.password_for = password_for
        self.realm = realm
        self.protocol = protocol
        self.server_name = server_name
        self.nonce = secrets.token_urlsafe(30)
        self.step = 0
        self.complete = False
        self.authentication_id = ""
        self.authorization_id = ""

    def evaluate(self, token: bytes) -> bytes:
        """The next server token; DigestError to refuse."""
        if len(token) > MAX_RESPONSE:
            raise DigestError(f"invalid digest response length {len(token)}")
        if self.step == 0:
            # An initial response is ignored (as by Java's DIGEST-MD5 server, which
            # ZooKeeper uses): the client gets the challenge.
            self.step = 1
            return (f'realm="{self.realm}",nonce="{self.nonce}",qop="auth",'
                    f'charset=utf-8,algorithm=md5-sess').encode()
        if self.step == 1:
            self.step = 2
            return self._verify(token)
        raise DigestError("DIGEST-MD5 exchange already finished")

    def _verify(self, token: bytes) -> bytes:
        d = parse_directives(token)
        for key in ("username", "nonce", "cnonce", "nc", "response", "digest-uri"):
            if key not in d:
                raise DigestError(f"missing directive {key}")
        if not hmac.compare_digest(d["nonce"].encode(), self.nonce.encode()):
            raise DigestError("nonce mismatch")
        if d["nc"].lower() != "00000001":
            raise DigestError(f"unexpected nonce count {d['nc']}")
        qop = d.get("qop", "auth")
        if qop != "auth":
            raise DigestError(f"unsupported qop {qop}")
        if "charset" in d and d["charset"].lower() != "utf-8":
            raise DigestError(f"unsupported charset {d['charset']}")
        realm = d.get("realm", "")
        if "realm" in d and realm != self.realm:
            raise DigestError(f"mismatched realm {realm!r}")
        uri = d["digest-uri"]
        serv, _, host = uri.partition("/")
        if serv.lower() != self.protocol.lower() or \
                host.split("/", 1)[0].lower() != self.server_name.lower():
            raise DigestError(f"mismatched digest-uri {uri!r}")
        user = d["username"]
        password = self.password_for(user)
        if password is None:
            raise DigestError(f"unknown user {user!r}")
        authzid = d.get("authzid")
        a1 = _h(_enc(user) + b":" + _enc(realm) + b":" + _enc(password))
        a1 += b":" + d["nonce"].encode() + b":" + d["cnonce"].encode()
        if authzid:
            a1 += b":" + authzid.encode("utf-8")
        ha1 = _hex(_h(a1))

        def kd(a2: str) -> str:
            data = f'{ha1}:{d["nonce"]}:{d["nc"]}:{d["cnonce"]}:{qop}:{_hex(_h(a2.encode()))}'
            return _hex(_h(data.encode()))

        expected = kd("AUTHENTICATE:" + uri)
        if not hmac.compare_digest(expected.encode(), d["response"].lower().encode()):
            raise DigestError(f"wrong password for user {user!r}")
        self.complete = True
        self.authentication_id = user
        self.authorization_id = authzid or user
        return ("rspauth=" + kd(":" + uri)).encode()
