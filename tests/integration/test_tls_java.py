"""The stock Java client over TLS: ``zookeeper.client.secure=true`` with the Netty client
socket and keystore/truststore system properties, x509 ids from its certificate.

Needs Debian's libzookeeper-java and libnetty-java (a dependency of the former).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import client_drivers as cd
from tests.integration.client_drivers import NO_AUTH, Driver
from tests.integration.test_tls import (
    ADMIN_DN,
    CLIENT_DN,
    NETTY_JARS,
    Pki,
    start_server,
    tls_cfg,
)
from tests.support.certs import PASSWORD, CertFactory, Issued
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.java



@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def java_base(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    driver = cd.build_java_driver(tmp_path_factory)
    missing = [j for j in NETTY_JARS if not (cd.JAR_DIR / j).exists()]
    if missing:
        pytest.skip(f"Netty jars missing (apt-get install libnetty-java): {missing}")
    return driver


def secure_java(base: Driver, pki: Pki, cert: Issued | None, pem: bool = False) -> Driver:
    """The driver with the Netty client socket, TLS and the given client certificate."""
    argv = list(base.argv_prefix)
    cp_at = argv.index("-cp") + 1
    argv[cp_at] += ":" + ":".join(str(cd.JAR_DIR / j) for j in NETTY_JARS)
    props = {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        # PEM: Java reads a PKCS12 of bare certificates only with its own trust attribute.
        "zookeeper.ssl.trustStore.location": str(pki.ca.ca_pem),
        "zookeeper.ssl.trustStore.type": "PEM",
    }
    if cert is not None:
        if pem:
            props.update({"zookeeper.ssl.keyStore.location": str(cert.keystore_pem),
                          "zookeeper.ssl.keyStore.type": "PEM"})
        else:
            props.update({"zookeeper.ssl.keyStore.location": str(cert.keystore_p12),
                          "zookeeper.ssl.keyStore.password": PASSWORD,
                          "zookeeper.ssl.keyStore.type": "PKCS12"})
    flags = [f"-D{k}={v}" for k, v in props.items()]
    main = argv.index("ZkScript")
    return Driver(argv[:main - 2] + flags + argv[main - 2:], base.env)


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("java-tls"), tls_cfg(pki, "want"))
    yield srv
    srv.stop()


def tls_cs(srv: ServerProcess) -> str:
    return f"127.0.0.1:{srv.extra_cfg['secureClientPort']}"


def test_java_client_over_tls_with_x509_acl(java_base: Driver, pki: Pki,
                                           server: ServerProcess) -> None:
    owner = secure_java(java_base, pki, pki.client)
    t = owner.run(tls_cs(server), [
        "connect a",
        "who: whoami",
        # 'creator' (auth) expands to the certificate's x509 id (the driver's ACL syntax
        # cannot spell a DN, which has commas).
        "c: create /java-x509 data P acl=creator",
        "g: get /java-x509",
        "acl: getacl /java-x509",
    ])
    assert ["x509", CLIENT_DN] in t.ok("who")["identities"]
    t.ok("c")
    t.ok("g")
    assert str(CLIENT_DN) in str(t.ok("acl")), t.dump()
    # Stranger: TLS without a certificate (PEM-less run), then the admin (superUser).
    anon = secure_java(java_base, pki, None).run(tls_cs(server), [
        "connect b", "g: get /java-x509"])
    assert anon.err("g") == NO_AUTH
    admin = secure_java(java_base, pki, pki.admin, pem=True).run(tls_cs(server), [
        "connect c", "who: whoami", "g: get /java-x509"])
    assert ["x509", ADMIN_DN] in admin.ok("who")["identities"]
    admin.ok("g")


def test_java_plain_client_on_the_plain_port_alongside(java_base: Driver,
                                                      server: ServerProcess) -> None:
    t = java_base.run(server.connect_string, [
        "connect a", "c: create /java-plain x P", "g: get /java-plain"])
    t.ok("g")


DN_NAMES_JAVA = """
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

public class DnNames {
    public static void main(String[] args) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (String f : args) {
            try (FileInputStream in = new FileInputStream(f)) {
                X509Certificate c = (X509Certificate) cf.generateCertificate(in);
                System.out.println(c.getSubjectX500Principal().getName());
            }
        }
    }
}
"""


def test_x509_ids_are_javas_rfc2253_names(java_base: Driver, tmp_path: Path) -> None:
    """The x509 id of a certificate is exactly what X500Principal.getName() returns, for
    subjects with escapes, OID-only attributes, multi-valued RDNs and BMPStrings."""
    from cryptography.hazmat.primitives import serialization

    from plugins.auth_x509 import rfc2253_name
    from tests.integration.test_tls import tricky_subjects

    factory = CertFactory(tmp_path / "ca")
    files, ours = [], []
    for i, (subject, _expected) in enumerate(tricky_subjects()):
        der = factory.issue(f"c{i}", subject).cert.public_bytes(serialization.Encoding.DER)
        path = tmp_path / f"c{i}.der"
        path.write_bytes(der)
        files.append(str(path))
        ours.append(rfc2253_name(der))
    src = tmp_path / "DnNames.java"
    src.write_text(DN_NAMES_JAVA)
    java = shutil.which("java")
    assert java is not None
    p = subprocess.run([java, str(src), *files], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ours
