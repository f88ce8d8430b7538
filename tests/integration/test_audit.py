"""The audit log (``audit.enable=true``): who did what to which znode, allowed or denied.

Lines follow ZooKeeper's AuditEvent format: tab-separated ``key=value`` fields in the
order session, user, ip, operation, znode, znode_type, acl, then result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.servers import ApacheZooKeeperServer, ServerProcess, server_class

kazoo_client = pytest.importorskip("kazoo.client")
pytest.importorskip("puresasl")
from kazoo.exceptions import BadVersionError, NoAuthError, NoNodeError  # noqa: E402
from kazoo.security import make_acl  # noqa: E402

if server_class() is ApacheZooKeeperServer:
    pytest.skip("kernel.audit.file is zkernel's key", allow_module_level=True)

JAAS = """Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="secret";
};
"""


def read_events(path: Path, n: int, timeout: float = 5.0) -> list[dict[str, str]]:
    """The audit lines (as dicts, without the time stamp) once there are ``n``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    out = []
    for line in lines:
        _date, _time, level, rest = line.split(" ", 3)
        ev = dict(kv.split("=", 1) for kv in rest.split("\t"))
        ev["_level"] = level
        ev["_keys"] = ",".join(k.split("=", 1)[0] for k in rest.split("\t"))
        out.append(ev)
    return out


def test_audit_log_records_allowed_and_denied_writes(
        server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(JAAS)
    log = tmp_path / "audit.log"
    srv = server_factory(cfg={
        "audit.enable": "true", "kernel.audit.file": str(log),
        "java.security.auth.login.config": str(jaas),
        "authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"})
    bob = kazoo_client.KazooClient(srv.connect_string, sasl_options={
        "mechanism": "DIGEST-MD5", "username": "bob", "password": "secret"})
    anon = kazoo_client.KazooClient(srv.connect_string)
    bob.start(10)
    anon.start(10)
    bsid, asid = f"0x{bob.client_id[0]:x}", f"0x{anon.client_id[0]:x}"
    try:
        bob.create("/a", b"1", acl=[make_acl("sasl", "bob", all=True)])
        bob.create("/a/e", b"", ephemeral=True, sequence=True)
        bob.set("/a", b"2")
        bob.set_acls("/a", [make_acl("sasl", "bob", all=True),
                            make_acl("world", "anyone", read=True)])
        with pytest.raises(NoAuthError):
            anon.set("/a", b"hacked")  # denied
        with pytest.raises(NoNodeError):
            anon.delete("/missing")
        with pytest.raises(BadVersionError):
            bob.set("/a", b"3", version=99)
        anon.get("/a")  # reads are not audited (as in ZooKeeper)
        t = bob.transaction()
        t.create("/m", b"")
        t.set_data("/m", b"x")
        t.delete("/m")
        t.commit()
        events = read_events(log, 12)
    finally:
        bob.stop()
        anon.stop()
    got = [(e.get("session"), e.get("user"), e["operation"], e.get("znode"),
            e.get("znode_type"), e.get("acl"), e["result"], e["_level"]) for e in events]
    assert got[0] == (None, got[0][1], "serverStart", None, None, None, "success", "INFO")
    seq = events[2]["znode"]
    assert seq.startswith("/a/e") and len(seq) == len("/a/e") + 10
    assert got[1:] == [
        (bsid, "127.0.0.1,bob", "create", "/a", "persistent", None, "success", "INFO"),
        (bsid, "127.0.0.1,bob", "create", seq, "ephemeral_sequential", None, "success",
         "INFO"),
        (bsid, "127.0.0.1,bob", "setData", "/a", None, None, "success", "INFO"),
        (bsid, "127.0.0.1,bob", "setAcl", "/a", None, "sasl:bob:cdrwaworld:anyone:r",
         "success", "INFO"),
        (asid, "127.0.0.1", "setData", "/a", None, None, "failure", "ERROR"),
        (asid, "127.0.0.1", "delete", "/missing", None, None, "failure", "ERROR"),
        (bsid, "127.0.0.1,bob", "setData", "/a", None, None, "failure", "ERROR"),
        (bsid, "127.0.0.1,bob", "create", "/m", "persistent", None, "success", "INFO"),
        (bsid, "127.0.0.1,bob", "setData", "/m", None, None, "success", "INFO"),
        (bsid, "127.0.0.1,bob", "delete", "/m", None, None, "success", "INFO"),
    ]
    # ZooKeeper's field order.
    assert events[1]["_keys"] == "session,user,ip,operation,znode,znode_type,result"
    assert events[4]["_keys"] == "session,user,ip,operation,znode,acl,result"
    assert all(e.get("ip") == "127.0.0.1" for e in events[1:])


def test_audit_is_off_by_default(server_factory: Callable[..., ServerProcess],
                                 tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    srv = server_factory(cfg={"kernel.audit.file": str(log)})
    zk = kazoo_client.KazooClient(srv.connect_string)
    zk.start(10)
    try:
        zk.create("/x", b"")
    finally:
        zk.stop()
    assert not log.exists()
