"""A reader for JAAS login configuration files (the ``Server { ... };`` sections).

ZooKeeper's server takes its SASL users and its Kerberos identity from the section
named by ``zookeeper.sasl.serverconfig`` (default ``Server``) of the file named by the
``java.security.auth.login.config`` system property::

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_bob="secret";
        com.sun.security.auth.module.Krb5LoginModule required
        useKeyTab=true keyTab="/etc/zk.keytab" principal="zookeeper/host@REALM";
    };
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIGEST_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
KRB5_MODULE = "com.sun.security.auth.module.Krb5LoginModule"

_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{};=])|([^\s{};="]+))', re.S)


class JaasError(ValueError):
    """A JAAS file that cannot be read or parsed."""


@dataclass
class LoginModule:
    """One ``module flag options...;`` entry of a section."""

    name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _strip_comments(text: str) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[str]:
    toks: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JaasError(f"unexpected character at offset {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        toks.append(m.group(1) or m.group(2) or m.group(3))
    return toks


def _value(tok: str) -> str:
    if tok.startswith('"'):
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    return tok


def parse_jaas(text: str) -> dict[str, list[LoginModule]]:
    """Sections by name, each a list of login modules with their options."""
    toks = _tokens(_strip_comments(text))
    sections: dict[str, list[LoginModule]] = {}
    i = 0

    def need(k: int) -> str:
        if k >= len(toks):
            raise JaasError("unexpected end of file")
        return toks[k]

    while i < len(toks):
        name = toks[i]
        if need(i + 1) != "{":
            raise JaasError(f"expected '{{' after section name {name!r}")
        i += 2
        modules: list[LoginModule] = []
        while need(i) != "}":
            mod, flag = need(i), need(i + 1)
            if flag not in ("required", "requisite", "sufficient", "optional"):
                raise JaasError(f"{name}: module {mod} needs a control flag, got {flag!r}")
            i += 2
            opts: dict[str, str] = {}
            while need(i) != ";":
                key = need(i)
                if need(i + 1) != "=":
                    raise JaasError(f"{name}: expected key=value after {key!r}")
                opts[key] = _value(need(i + 2))
                i += 3
            i += 1
            modules.append(LoginModule(mod, flag, opts))
        i += 1
        if i < len(toks) and toks[i] == ";":
            i += 1
        sections[name] = modules
    return sections


def load_jaas(path: Path) -> dict[str, list[LoginModule]]:
    """Parse a JAAS file; JaasError with the file name on any problem."""
    try:
        text = path.read_text()
    except OSError as e:
        raise JaasError(f"cannot read JAAS file {path}: {e.strerror}") from None
    try:
        return parse_jaas(text)
    except JaasError as e:
        raise JaasError(f"{path}: {e}") from None
