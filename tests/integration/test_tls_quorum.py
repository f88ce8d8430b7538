"""TLS between the servers of an ensemble (``sslQuorum=true`` + ``ssl.quorum.*``).

Every peer link is mutually authenticated TLS: a server whose certificate the others do
not trust never joins, a plaintext peer is refused, and the ensemble replicates as
usual. zkernel only (Apache ZooKeeper's quorum TLS needs its Netty setup and Java key
stores, configured differently).
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.certs import CertFactory, Issued
from tests.support.ensemble import Ensemble, target_kind

pytestmark = [pytest.mark.ensemble,
              pytest.mark.skipif(target_kind() != "zkernel",
                                 reason="zkernel's quorum TLS keys only")]


def _quorum_cfg(keystore: Path, truststore: Path) -> dict[str, object]:
    return {"sslQuorum": "true",
            "ssl.quorum.keyStore.location": str(keystore),
            "ssl.quorum.trustStore.location": str(truststore)}


class _MixedEnsemble(Ensemble):
    """An ensemble where one server presents a certificate from another CA."""

    def __init__(self, *args: object, odd: int, odd_cfg: dict[str, object],
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.odd = odd
        self.odd_cfg = odd_cfg

    def config_lines(self, i: int) -> list[str]:
        lines = super().config_lines(i)
        if i != self.odd:
            return lines
        keys = {k.split("=", 1)[0] for k in (f"{k}={v}" for k, v in self.odd_cfg.items())}
        kept = [ln for ln in lines if ln.split("=", 1)[0] not in keys]
        return kept + [f"{k}={v}" for k, v in self.odd_cfg.items()]


@pytest.fixture
def certs(tmp_path: Path) -> Iterator[tuple[CertFactory, Issued]]:
    ca = CertFactory(tmp_path / "ca")
    yield ca, ca.issue("quorum", "zkernel-quorum", server=True)


def _kazoo(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=30)
    return c


def test_ensemble_replicates_over_mutual_tls(tmp_path: Path,
                                              certs: tuple[CertFactory, Issued]) -> None:
    ca, issued = certs
    ens = Ensemble(3, tmp_path / "ens", cfg=_quorum_cfg(issued.keystore_pem, ca.ca_pem))
    try:
        ens.start()
        leader = ens.leader(timeout=30)
        writer = _kazoo(ens.connect_string([leader]))
        reader = _kazoo(ens.connect_string([(leader + 1) % 3]))
        try:
            writer.create("/over-tls", b"sealed")
            reader.sync("/over-tls")
            assert reader.get("/over-tls")[0] == b"sealed"
        finally:
            writer.stop()
            reader.stop()
        port = ens.members[leader].quorum_port
        # The quorum port speaks TLS and accepts a peer certificate from our CA ...
        ctx = ssl.create_default_context(cafile=str(ca.ca_pem))
        ctx.load_cert_chain(str(issued.cert_pem), str(issued.key_pem))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() is not None
        # ... but not a peer without a certificate, nor a plaintext one.
        bare = ssl.create_default_context(cafile=str(ca.ca_pem))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)), \
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                bare.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"x")
            tls.recv(1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(struct.pack(">I", 3) + b"r\x01\x01")
            s.settimeout(5)
            try:
                data = s.recv(100)
            except (ConnectionResetError, TimeoutError):
                data = b""
            assert not data.startswith(b"\x00")  # no frame of ours came back
        assert ens.leader(timeout=10) == leader
    finally:
        ens.close()


def test_a_server_with_an_untrusted_certificate_never_joins(
        tmp_path: Path, certs: tuple[CertFactory, Issued]) -> None:
    ca, issued = certs
    stranger = CertFactory(tmp_path / "other-ca", ca_name="someone else")
    foreign = stranger.issue("foreign", "zkernel-intruder", server=True)
    ens = _MixedEnsemble(3, tmp_path / "ens",
                         cfg=_quorum_cfg(issued.keystore_pem, ca.ca_pem),
                         odd=2, odd_cfg={"ssl.quorum.keyStore.location":
                                         str(foreign.keystore_pem)})
    try:
        for i in (0, 1):
            ens.launch(i)
        ens.wait_serving(60, among=[0, 1])
        leader = ens.leader(timeout=30, among=[0, 1])
        ens.launch(2)
        time.sleep(3)
        assert ens.mode(2) is None, "a server the others do not trust joined"
        c = _kazoo(ens.connect_string([leader]))
        try:
            c.create("/still-fine", b"")
        finally:
            c.stop()
    finally:
        ens.close()
