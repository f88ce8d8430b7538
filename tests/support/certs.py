"""Test certificates made with the ``cryptography`` package: a CA, server and client
certificates (also expired and untrusted ones), written as PEM and PKCS12 files."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD = "changeit"


@dataclass
class Issued:
    """A key and its certificate, with the files written for it."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_pem: Path  # the certificate alone
    key_pem: Path  # the private key alone (unencrypted)
    keystore_pem: Path  # key + certificate in one file (ZooKeeper's PEM keystore)
    keystore_p12: Path  # PKCS12 with PASSWORD


def _name(cn: str, org: str = "zkernel-test") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CertFactory:
    """Issues certificates from one CA into ``directory``."""

    def __init__(self, directory: Path, ca_name: str = "zkernel test CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = _name(ca_name)
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.ca_key, hashes.SHA256()))
        slug = ca_name.replace(" ", "_")
        self.ca_pem = self.dir / f"{slug}.pem"
        self.ca_pem.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.truststore_p12 = self.dir / f"{slug}-trust.p12"
        self.truststore_p12.write_bytes(pkcs12.serialize_key_and_certificates(
            b"ca", None, None, [self.ca_cert],
            serialization.BestAvailableEncryption(PASSWORD.encode())))

    def issue(self, file_stem: str, subject: x509.Name | str, *, server: bool = False,
              expired: bool = False, days: int = 30) -> Issued:
        """A certificate signed by this CA (``server``: SANs 127.0.0.1 and localhost)."""
        name = _name(subject) if isinstance(subject, str) else subject
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            start, end = now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
        else:
            start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(self.ca_cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = b.sign(self.ca_key, hashes.SHA256())
        key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        cert_bytes = cert.public_bytes(serialization.Encoding.PEM)
        paths = {k: self.dir / f"{file_stem}{suffix}" for k, suffix in (
            ("cert", "-cert.pem"), ("key", "-key.pem"), ("ks", "-keystore.pem"),
            ("p12", ".p12"))}
        paths["cert"].write_bytes(cert_bytes)
        paths["key"].write_bytes(key_bytes)
        paths["ks"].write_bytes(key_bytes + cert_bytes)
        paths["p12"].write_bytes(pkcs12.serialize_key_and_certificates(
            file_stem.encode(), key, cert, None,
            serialization.BestAvailableEncryption(PASSWORD.encode())))
        return Issued(file_stem, key, cert, paths["cert"], paths["key"], paths["ks"],
                      paths["p12"])
