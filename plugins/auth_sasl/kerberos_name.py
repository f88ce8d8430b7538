"""Kerberos principal names and ZooKeeper's canonical SASL id for them.

ZooKeeper (``SaslServerCallbackHandler``) turns the authenticated principal
``service/host@REALM`` into the ``sasl`` id: the short name (auth_to_local ``DEFAULT``:
the first component when the realm is the default realm), then ``/host`` unless
``kerberos.removeHostFromPrincipal``, then ``@REALM`` unless
``kerberos.removeRealmFromPrincipal``. A principal no rule maps keeps its full name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^([^/@]*)(/([^/@]*))?@([^/@]*)$")


@dataclass(frozen=True)
class KerberosName:
    """``service[/host][@realm]`` split as ZooKeeper's KerberosName does."""

    service: str
    host: str | None
    realm: str | None

    @staticmethod
    def parse(name: str) -> KerberosName:
        """ValueError for a name with '@' that is not ``x[/y]@z``."""
        m = _NAME.match(name)
        if m is None:
            if "@" in name:
                raise ValueError(f"malformed Kerberos name: {name}")
            return KerberosName(name, None, None)
        return KerberosName(m.group(1), m.group(3), m.group(4))

    def short_name(self, default_realm: str) -> str | None:
        """The DEFAULT auth_to_local rule; None when no rule applies."""
        if self.host is None and self.realm is None:
            return self.service
        if self.realm == default_realm:
            return self.service
        return None


def default_realm() -> str:
    """``[libdefaults] default_realm`` of the krb5 configuration in use, or ''."""
    paths = os.environ.get("KRB5_CONFIG", "/etc/krb5.conf").split(":")
    for p in paths:
        try:
            text = Path(p).read_text()
        except OSError:
            continue
        section = ""
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[] ").lower()
            elif section == "libdefaults" and line.split("=", 1)[0].strip() == "default_realm":
                return line.split("=", 1)[1].strip()
    return ""


def sasl_id(authentication_id: str, authorization_id: str, realm_default: str,
            remove_host: bool, remove_realm: bool) -> str:
    """The ``sasl`` id ZooKeeper records for a completed exchange."""
    try:
        kn = KerberosName.parse(authentication_id)
    except ValueError:
        return authorization_id or authentication_id
    short = kn.short_name(realm_default)
    if short is None:
        # ZooKeeper: "No rules applied" - the authorized id stays the authorization id.
        return authorization_id or authentication_id
    out = short
    if kn.host is not None and not remove_host:
        out += "/" + kn.host
    if kn.realm is not None and not remove_realm:
        out += "@" + kn.realm
    return out
