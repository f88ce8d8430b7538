"""The server side of SASL GSSAPI (RFC 4752, Kerberos V5) on python-gssapi.

The GSS-API context is accepted with the keytab and principal of the JAAS section;
then the SASL security-layer negotiation: the server offers "no security layer" (the
only one ZooKeeper uses), the client answers with its choice and authorization id.
"""

from __future__ import annotations

import struct
from typing import Any

_QOP_AUTH = 1


class GssapiError(Exception):
    """The GSS-API exchange failed (bad token, unknown principal, expired ticket ...)."""


def acquire_acceptor(keytab: str | None, principal: str | None) -> Any:
    """Acceptor credentials for ``principal`` (any keytab entry when None)."""
    import gssapi

    name = (gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            if principal else None)
    from gssapi.raw import GSSError

    store: dict[bytes | str, bytes | str] | None = {"keytab": keytab} if keytab else None
    try:
        return gssapi.Credentials(name=name, usage="accept", store=store)
    except GSSError as e:
        raise GssapiError(f"cannot acquire Kerberos credentials for {principal} from "
                          f"keytab {keytab}: {e}") from None


class GssapiServer:
    """One connection's GSSAPI exchange."""

    def __init__(self, creds: Any) -> None:
        import gssapi
        from gssapi.raw import GSSError

        self._gss_error = GSSError
        self.ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        self.state = "context"
        self.complete = False
        self.authentication_id = ""
        self.authorization_id = ""

    def evaluate(self, token: bytes) -> bytes | None:
        """The next server token (None for a null one); GssapiError to refuse."""
        try:
            return self._evaluate(token)
        except self._gss_error as e:
            raise GssapiError(str(e)) from None
        except (struct.error, UnicodeDecodeError) as e:
            raise GssapiError(f"malformed security-layer message: {e}") from None

    def _evaluate(self, token: bytes) -> bytes | None:
        if self.state == "context":
            if not token:
                raise GssapiError("empty GSSAPI token")
            out: bytes | None = self.ctx.step(token)
            if not self.ctx.complete:
                return out or b""
            self.authentication_id = str(self.ctx.initiator_name)
            if out:
                self.state = "wait"
                return out
            return self._offer()
        if self.state == "wait":
            return self._offer()
        if self.state == "offer":
            msg = self.ctx.unwrap(token).message
            if len(msg) < 4:
                raise GssapiError("security-layer answer too short")
            (word,) = struct.unpack(">I", msg[:4])
            if (word >> 24) != _QOP_AUTH:
                raise GssapiError(f"client chose an unoffered security layer {word >> 24}")
            self.authorization_id = msg[4:].decode("utf-8") or self.authentication_id
            self.state = "done"
            self.complete = True
            return None
        raise GssapiError("GSSAPI exchange already finished")

    def _offer(self) -> bytes:
        self.state = "offer"
        # Only "no security layer", max buffer 0 (RFC 4752 3.1).
        return bytes(self.ctx.wrap(struct.pack(">I", _QOP_AUTH << 24), False).message)
